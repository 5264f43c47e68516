//! Assembling and running the HTTP server.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_swagger_ui::SwaggerUi;

use crate::extract::{form_error, path_error, query_error};
use crate::fallback::{RouteTable, not_matched};
use crate::state::AppState;

pub struct ServerOptions {
    pub workers: Option<usize>,
    pub shutdown_timeout: Duration,
    /// How long an idle client connection is kept open. Longer than a load balancer's
    /// idle timeout (60 s on the common ones), so the balancer closes first and never
    /// sends a request on a connection the api is closing (a sporadic 502).
    pub keep_alive: Duration,
    /// Between SIGTERM and closing the listener (readiness answers 503 meanwhile).
    pub shutdown_delay: Duration,
    /// Whether SIGTERM and SIGINT stop the server (not for servers inside a test process,
    /// which its test runner stops).
    pub handle_signals: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(75),
            shutdown_delay: Duration::ZERO,
            handle_signals: true,
        }
    }
}

/// Builds the server on an already bound listener (tests bind port 0). The server stops
/// gracefully on SIGTERM/SIGINT, letting in-flight requests finish; after SIGTERM it first
/// keeps serving for the shutdown delay with readiness failing, so the load balancer
/// stops sending before the listener closes.
pub fn build_server(
    state: AppState,
    listener: TcpListener,
    options: ServerOptions,
) -> std::io::Result<Server> {
    let draining = state.draining.clone();
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        let base = App::new()
            .app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::FormConfig::default().error_handler(form_error));
        let (app, doc) = crate::openapi::register(base);
        app.app_data(web::Data::new(RouteTable::from_openapi(&doc)))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", doc))
            .route("/docs", web::get().to(docs_redirect))
            .default_service(web::to(not_matched))
            .wrap(from_fn(crate::middleware::wake_workers))
            .wrap(from_fn(crate::idempotency::idempotency))
            .wrap(from_fn(crate::middleware::deadline))
            .wrap(from_fn(crate::middleware::envelope))
    })
    .listen(listener)?
    .keep_alive(options.keep_alive)
    .shutdown_timeout(options.shutdown_timeout.as_secs())
    .disable_signals();
    if let Some(workers) = options.workers {
        server = server.workers(workers.max(1));
    }
    let server = server.run();
    if options.handle_signals {
        stop_on_signals(&server, draining, options.shutdown_delay)?;
    }
    Ok(server)
}

/// SIGTERM (an orchestrator's stop): readiness fails at once, the listener keeps serving
/// for `delay`, then closes and in-flight requests finish. SIGINT (Ctrl-C): the same
/// without the delay.
fn stop_on_signals(
    server: &Server,
    draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let terminated = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => false,
        };
        draining.store(true, std::sync::atomic::Ordering::SeqCst);
        if terminated && !delay.is_zero() {
            tracing::info!(
                delay_secs = delay.as_secs(),
                "SIGTERM received; readiness answers 503 while the load balancer drains this replica"
            );
            tokio::time::sleep(delay).await;
        }
        tracing::info!(
            "starting graceful shutdown: the listener closes, requests in flight finish"
        );
        handle.stop(true).await;
    });
    Ok(())
}

async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}
