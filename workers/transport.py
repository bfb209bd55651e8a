"""Kombu's filesystem transport with atomic message writes (the embedded, server-less broker).

Stock kombu creates the message file and then writes it; a consumer polling the folder can take
the empty file in between, fail to decode it and kill the Celery worker ("Unrecoverable error:
JSONDecodeError"), which we hit with a 0.5 s beat. Writing under a name the consumer ignores and
renaming into place makes each message appear whole or not at all.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        part = final + ".part"  # `_get` only takes names ending in ".<queue>.msg"
        try:
            with open(part, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(part, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel


def install() -> None:
    """Make `filesystem://` URLs use the atomic transport in this process."""
    TRANSPORT_ALIASES["filesystem"] = "workers.transport:AtomicFilesystemTransport"
