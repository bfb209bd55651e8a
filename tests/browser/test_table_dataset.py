"""A table dataset's page at a phone's width: the column statistics scroll inside their own box."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.datasets import load_breast_cancer

from tests.browser.login import log_in_at

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def test_column_statistics_scroll_in_their_box_at_phone_width(live_server, alice, chromium, tmp_path):
    from webapp.datasets.services import create_and_convert

    user, team = alice
    csv = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"}).to_csv(index=False)
    ds = create_and_convert(team=team, user=user, name="cancer", upload=SimpleUploadedFile("c.csv", csv.encode()))
    context = chromium.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    try:
        log_in_at(page, live_server.url + ds.get_absolute_url())
        box = page.locator("#column-stats .table-box")
        assert page.locator("#column-stats tbody tr").count() == 30
        assert page.locator("#column-stats tbody tr").first.locator("td").first.inner_text() == "mean radius"
        geometry = box.evaluate(
            "b => ({right: b.getBoundingClientRect().right, client: b.clientHeight, scroll: b.scrollHeight})"
        )
        assert geometry["right"] <= PHONE["width"]  # the box fits the screen...
        assert geometry["scroll"] > geometry["client"]  # ... and its 30 rows scroll inside it
        page.screenshot(path=str(tmp_path / "table-dataset-phone.png"), full_page=True)
    finally:
        context.close()
