"""The live dashboard (``GET /``) and the per-second counts it charts.

Placeholder until the dashboard lands. The app factory registers `blueprint` and puts
its Redis client in ``app.extensions["alert_service.redis"]``.
"""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("dashboard", __name__)
