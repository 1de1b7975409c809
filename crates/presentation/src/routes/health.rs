//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use stowage_application::use_cases::ComponentStatus;

use crate::dto::{ComponentsResponse, HealthResponse};
use crate::state::AppState;

/// `GET /health/live`: the process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn live() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        components: None,
    })
}

/// `GET /health/ready`: every dependency answers (`200`), or not (`503`).
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse))
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let readiness = state.services().readiness.execute().await;
    let word = |s: ComponentStatus| match s {
        ComponentStatus::Ok => "ok",
        ComponentStatus::Unavailable => "unavailable",
    };
    let ready = readiness.is_ready();
    let body = HealthResponse {
        status: if ready { "ok" } else { "unavailable" },
        components: Some(ComponentsResponse {
            database: word(readiness.database),
            storage: word(readiness.storage),
            redis: readiness.redis.map(word),
        }),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
