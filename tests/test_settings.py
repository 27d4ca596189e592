"""Settings from the environment: a value that cannot be understood is an error naming the variable."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("RETAIL_PIPELINE_RUN_TIMEOUT_SECONDS", "abc", "not an integer"),
        ("RETAIL_PIPELINE_SWEEP_GRACE_SECONDS", "-5", "must not be negative"),
        ("RETAIL_PIPELINE_MAX_ROWS", "1e3", "not an integer"),
        ("RETAIL_PIPELINE_MAX_DATA_AGE_HOURS", "soon", "not a number"),
        ("RETAIL_PIPELINE_LANDING", "s3://bucket", "use gs://BUCKET"),
        ("RETAIL_PIPELINE_REPORTS", "s3://reports/", "use gs://BUCKET"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_setting(tmp_path, variable, value, says):
    from retail_pipeline.config import Settings
    from retail_pipeline.urls import SettingError

    with pytest.raises(SettingError) as caught:
        Settings.from_env(tmp_path / "home", environ={variable: value})
    assert says in str(caught.value)
    assert value in str(caught.value)
    if "URL" not in str(caught.value):
        assert variable in str(caught.value)


def test_numbers_and_folders_that_are_fine_are_taken(tmp_path):
    from retail_pipeline.config import Settings

    settings = Settings.from_env(
        tmp_path / "home",
        environ={
            "RETAIL_PIPELINE_RUN_TIMEOUT_SECONDS": "0",
            "RETAIL_PIPELINE_MAX_DATA_AGE_HOURS": "1.5",
            "RETAIL_PIPELINE_MAX_ROWS": "1000",
            "RETAIL_PIPELINE_LANDING": f"file://{tmp_path / 'landing'}",
        },
    )
    assert (settings.run_timeout_seconds, settings.max_data_age_hours, settings.limits.max_rows) == (0, 1.5, 1000)
    assert settings.landing_url.path == tmp_path / "landing"
    assert Settings.from_env(settings.home, environ=settings.to_env()) == settings
