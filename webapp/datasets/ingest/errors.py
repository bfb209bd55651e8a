"""The one exception the web layer shows to users."""


class DatasetError(ValueError):
    """An upload that cannot become a dataset.

    The message is shown to the user as is: it says what is wrong and how to fix it, and never
    contains a traceback. The original exception, if any, is chained (``raise ... from exc``)
    so that logs keep the detail.
    """
