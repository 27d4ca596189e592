"""Where people look at the data: an offline HTML dashboard on the laptop, Looker Studio in the cloud."""

from .builder import DashboardError, build_dashboard, dashboard_path
from .looker import LOOKER_MARTS, looker_studio_params, looker_studio_url

__all__ = [
    "LOOKER_MARTS",
    "DashboardError",
    "build_dashboard",
    "dashboard_path",
    "looker_studio_params",
    "looker_studio_url",
]
