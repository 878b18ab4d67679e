"""Who is asking, and may they read this DAG: the Airflow API server's own rules, applied by us.

Airflow does not authenticate the FastAPI apps of plugins (apache/airflow#72655, #72935), so every
route of the tab calls :func:`authenticate` and :func:`authorize_dag` before it reads anything.
Both mirror ``airflow/api_fastapi/core_api/security.py``: the JWT comes from
``Authorization: Bearer`` or else the ``_token`` cookie the UI holds, the auth manager turns it
into a user (an expired token is 401, an invalid one 403, as Airflow answers), and
``is_authorized_dag`` decides, with the DAG's team, exactly as ``requires_access_dag`` does.
Airflow is imported inside the functions: plugins are imported by every Airflow process.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import HTTPException, Request

#: The name of the cookie the Airflow UI keeps its JWT in (``COOKIE_NAME_JWT_TOKEN``).
COOKIE_NAME = "_token"


def request_token(request: Request) -> str | None:
    """The JWT of the request: an explicit bearer credential wins over the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE_NAME) or None


async def authenticate(request: Request) -> Any:
    """The Airflow user of this request, or 401 (no or expired token) / 403 (invalid token)."""
    token = request_token(request)
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated")
    from airflow.api_fastapi.app import get_auth_manager
    from jwt import ExpiredSignatureError, InvalidTokenError

    try:
        user: Any = get_auth_manager().get_user_from_token(token)
        if inspect.isawaitable(user):  # async since Airflow 3.1
            user = await user
    except ExpiredSignatureError:
        raise HTTPException(status_code=401, detail="Token Expired") from None
    except InvalidTokenError:
        raise HTTPException(status_code=403, detail="Invalid JWT token") from None
    return user


def _team_name(dag_id: str) -> str | None:
    from airflow.models.dag import DagModel

    getter = getattr(DagModel, "get_team_name", None)  # multi-team mode, Airflow 3.1+
    return getter(dag_id) if getter is not None else None


def _dag_details(dag_id: str) -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    try:
        return DagDetails(id=dag_id, team_name=_team_name(dag_id))
    except TypeError:  # pragma: no cover - Airflow 3.0: no teams
        return DagDetails(id=dag_id)


def authorize_dag(user: Any, dag_id: str, entities: tuple[str, ...]) -> None:
    """403 unless the user may read (``GET``) each of these parts of the DAG.

    ``entities`` are ``DagAccessEntity`` names: ``RUN`` or ``TASK_INSTANCE`` for what the tab
    shows, and ``XCOM`` because the order ids are read from XComs.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    manager = get_auth_manager()
    details = _dag_details(dag_id)
    for entity in entities:
        allowed = manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity[entity], details=details, user=user
        )
        if not allowed:
            raise HTTPException(status_code=403, detail="Forbidden")
