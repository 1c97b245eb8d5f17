//! `actix-quickstart`: exactly the contract of `axum-quickstart` (environment, routes,
//! responses, local checkout, webhooks, graceful shutdown with flush), on actix-web,
//! driving the same engine through `paywall-actix`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use paywall::{BillingRoutes, Charge, IdentityResolver, Paywall, ReactRoutes};
use paywall_actix::{BilledCustomer, PaywallMiddleware, UsageMeter};
use paywall_jwt::JwtResolver;
use paywall_local::{checkout, portal, LocalBackend};
use paywall_solvapay::webhook::{self, WebhookVerifier, SIGNATURE_HEADER};

use paywall_examples::billing::{self, Billing};
use paywall_examples::config::{QuickstartConfig, QuickstartError};
use paywall_examples::generate;
use paywall_examples::responses;

/// A built actix quickstart: what every worker's `App` is made from.
#[derive(Clone, Debug)]
pub struct ActixQuickstart {
    /// The engine (shut it down after the server stops, to flush usage).
    pub paywall: Paywall,
    /// The embedded backend, unless billing goes through SolvaPay.
    pub local: Option<LocalBackend>,
    /// A token for `demo-user` (HS256 mode).
    pub sample_token: Option<String>,
    /// Whether the JWT secret was generated.
    pub generated_secret: bool,
    /// The JWT resolver [`build`] made: preload its keys at start-up.
    pub jwt: Option<Arc<JwtResolver>>,
    middleware: PaywallMiddleware,
    metered: PaywallMiddleware,
    billing: BillingRoutes,
    react: ReactRoutes,
    generate_delay: Duration,
    /// How long a whole request body may take (see [`BODY_DEADLINE`]).
    pub body_deadline: Duration,
    webhooks: Option<WebhookVerifier>,
}

/// Builds the actix quickstart for `config`; must be called inside a Tokio runtime
/// (actix's own is one).
pub fn build(
    config: &QuickstartConfig,
    base_url: &str,
) -> Result<ActixQuickstart, QuickstartError> {
    let (resolver, sample_token, generated_secret) = billing::identity(config)?;
    let mut app = build_with(config, base_url, Arc::clone(&resolver))?;
    app.sample_token = sample_token;
    app.generated_secret = generated_secret;
    app.jwt = Some(resolver);
    Ok(app)
}

/// The actix quickstart with another identity resolver.
pub fn build_with(
    config: &QuickstartConfig,
    base_url: &str,
    resolver: impl IdentityResolver,
) -> Result<ActixQuickstart, QuickstartError> {
    let Billing { paywall, local } = billing::billing(config, base_url, resolver)?;
    let middleware = PaywallMiddleware::new(&paywall, Charge::new(&config.product))?;
    let metered = PaywallMiddleware::new(
        &paywall,
        Charge::new(&config.product)
            .meter("tokens")
            .by_consumption(),
    )?;
    let billing = paywall_examples::billing::billing_routes(&paywall, config, base_url)?;
    let react = paywall_examples::billing::react_routes(&billing, config)?;
    Ok(ActixQuickstart {
        billing,
        react,
        paywall,
        local,
        sample_token: None,
        generated_secret: false,
        jwt: None,
        middleware,
        metered,
        generate_delay: config.generate_delay,
        body_deadline: BODY_DEADLINE,
        webhooks: config
            .webhook_secret
            .as_ref()
            .map(|secret| WebhookVerifier::new(secret.as_str())),
    })
}

impl ActixQuickstart {
    /// The routes, for `App::configure`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()));
        cfg.service(
            web::resource("/api/hello")
                .route(web::get().to(hello).wrap(self.middleware.clone()))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(
            web::resource("/api/generate")
                .route(web::post().to(generate_tokens).wrap(self.metered.clone()))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(
            web::resource("/metrics")
                .route(web::get().to(metrics_page))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(
            web::resource("/health")
                .route(web::get().to(health))
                .default_service(web::to(method_not_allowed)),
        );
        cfg.service(paywall_actix::billing_scope(
            "/api/billing",
            self.billing.clone(),
        ));
        cfg.configure(paywall_actix::react_services("/api", self.react.clone()));
        if self.local.is_some() {
            cfg.service(
                web::resource(format!("{}/{{session}}", checkout::PATH))
                    .route(web::get().to(checkout_page))
                    .route(web::post().to(checkout_pay))
                    .default_service(web::to(method_not_allowed)),
            );
            cfg.service(
                web::resource(format!("{}/{{session}}", portal::PATH))
                    .route(web::get().to(portal_page))
                    .default_service(web::to(method_not_allowed)),
            );
            cfg.service(
                web::resource(format!("{}/{{session}}/cancel", portal::PATH))
                    .route(web::post().to(portal_cancel))
                    .default_service(web::to(method_not_allowed)),
            );
        }
        if self.webhooks.is_some() {
            cfg.service(
                web::resource("/webhooks/solvapay")
                    .route(web::post().to(receive_webhook))
                    .default_service(web::to(method_not_allowed)),
            );
        }
        cfg.default_service(web::to(not_found));
    }
}

/// How long a whole request body may take to arrive (the axum quickstart's
/// `ServeLimits::body_timeout`): actix has a deadline for the head only.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Puts every request body under [`BODY_DEADLINE`], counted from the request's arrival
/// rather than per chunk: a body that trickles one byte at a time still ends in time.
async fn body_deadline(
    mut request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
    within: Duration,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let deadline = tokio::time::Instant::now() + within;
    let payload = actix_web::HttpMessage::take_payload(&mut request);
    let bounded = futures_util::stream::unfold(Some(payload), move |payload| async move {
        let mut payload = payload?;
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut payload)).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(actix_web::error::PayloadError::Io(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                ))),
                None,
            )),
        }
    });
    let boxed: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>>,
    > = Box::pin(bounded);
    request.set_payload(actix_web::dev::Payload::from(boxed));
    next.call(request).await
}

/// Serves `app` on `listener` with `workers` threads; call inside an actix system.
pub fn start(
    listener: std::net::TcpListener,
    app: ActixQuickstart,
    workers: usize,
) -> std::io::Result<Server> {
    // The limits the axum quickstart serves with, in actix's terms: the header section
    // within 10 s, idle keep-alive connections closed after 10 s, and at most the
    // connection budget open (shared by the workers).
    let header_timeout = paywall_examples::startup::HEADER_READ_TIMEOUT;
    let max_connections = paywall_examples::startup::connection_budget();
    let workers = workers.max(1);
    let deadline = app.body_deadline;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(move |request, next| {
                body_deadline(request, next, deadline)
            }))
            .app_data(web::PayloadConfig::new(
                generate::MAX_BODY_BYTES as usize * 4,
            ))
            .configure(|cfg| app.configure(cfg))
    })
    .workers(workers)
    .client_request_timeout(header_timeout)
    .keep_alive(header_timeout)
    .max_connections((max_connections / workers).max(1))
    .listen(listener)?
    .run();
    Ok(server)
}

fn json(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// An `application/problem+json` answer.
fn problem(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(paywall::adapter::PROBLEM_JSON)
        .body(body.to_string())
}

async fn hello(request: HttpRequest, customer: BilledCustomer) -> HttpResponse {
    let seen = request
        .headers()
        .get("x-customer-ref")
        .and_then(|value| value.to_str().ok());
    json(
        StatusCode::OK,
        responses::hello_body(seen, customer.external_ref()),
    )
}

async fn generate_tokens(
    app: web::Data<ActixQuickstart>,
    request: HttpRequest,
    usage: UsageMeter,
    body: web::Bytes,
) -> HttpResponse {
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > generate::MAX_BODY_BYTES) {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, generate::too_large_body());
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let parsed = match generate::parse(content_type, &body) {
        Ok(parsed) => parsed,
        Err(body) => return problem(StatusCode::BAD_REQUEST, body),
    };
    if let Err(refused) = usage.reserve(parsed.max_tokens).await {
        return refused.into_response();
    }
    if parsed.stream {
        let events = generate::events(usage.0, parsed.tokens, app.generate_delay);
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(futures_util::StreamExt::map(
                events,
                Ok::<_, actix_web::Error>,
            ))
    } else {
        let answer = generate::complete(&usage.0, parsed.tokens, app.generate_delay).await;
        json(StatusCode::OK, answer)
    }
}

async fn metrics_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(paywall_examples::startup::METRICS_CONTENT_TYPE)
        .body(paywall_examples::startup::metrics_text())
}

async fn health() -> HttpResponse {
    json(StatusCode::OK, responses::health_body())
}

async fn not_found() -> HttpResponse {
    json(StatusCode::NOT_FOUND, responses::not_found_body())
}

async fn method_not_allowed() -> HttpResponse {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        responses::method_not_allowed_body(),
    )
}

fn page(page: checkout::Page) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response.content_type(page.content_type);
    for header in checkout::PAGE_HEADERS {
        response.insert_header(header);
    }
    response.body(page.body)
}

async fn checkout_page(
    app: web::Data<ActixQuickstart>,
    session: web::Path<String>,
) -> HttpResponse {
    match &app.local {
        Some(local) => page(checkout::page(local, &session).await),
        None => not_found().await,
    }
}

/// [`checkout::same_origin`] of an actix request.
fn from_own_page(request: &HttpRequest) -> bool {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|value: &actix_web::http::header::HeaderValue| value.to_str().ok())
    };
    checkout::same_origin(header("origin"), header("host"))
}

async fn checkout_pay(
    app: web::Data<ActixQuickstart>,
    request: HttpRequest,
    session: web::Path<String>,
) -> HttpResponse {
    if !from_own_page(&request) {
        return page(checkout::cross_site());
    }
    match &app.local {
        Some(local) => page(checkout::pay(local, Some(&app.paywall), &session).await),
        None => not_found().await,
    }
}

async fn portal_page(app: web::Data<ActixQuickstart>, session: web::Path<String>) -> HttpResponse {
    match &app.local {
        Some(local) => page(portal::page(local, &session).await),
        None => not_found().await,
    }
}

async fn portal_cancel(
    app: web::Data<ActixQuickstart>,
    request: HttpRequest,
    session: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if !from_own_page(&request) {
        return page(checkout::cross_site());
    }
    match &app.local {
        Some(local) => {
            page(portal::cancel_purchase(local, Some(&app.paywall), &session, &body).await)
        }
        None => not_found().await,
    }
}

async fn receive_webhook(
    app: web::Data<ActixQuickstart>,
    request: HttpRequest,
    mut payload: web::Payload,
) -> HttpResponse {
    let Some(verifier) = &app.webhooks else {
        return not_found().await;
    };
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or(""));
    // An unsigned, malformed or stale request is refused before its body is read.
    if let Err(err) = verifier.precheck(signature) {
        let answer = webhook::refused(&err);
        return json(StatusCode::BAD_REQUEST, answer.body);
    }
    // Bodies are read a bounded number at a time (anyone can pass the precheck).
    let _reading = match verifier.admit() {
        Ok(place) => place,
        Err(busy) => {
            return HttpResponse::ServiceUnavailable()
                .insert_header(("retry-after", "1"))
                .json(busy.body)
        }
    };
    let too_large = || json(StatusCode::PAYLOAD_TOO_LARGE, webhook::too_large().body);
    let limit = webhook::MAX_WEBHOOK_BYTES as usize;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut payload).await {
        match chunk {
            Ok(chunk) if body.len() + chunk.len() <= limit => body.extend_from_slice(&chunk),
            _ => return too_large(),
        }
    }
    let handled = webhook::handle(verifier, &app.paywall, signature, &body).await;
    json(
        StatusCode::from_u16(handled.status).unwrap_or(StatusCode::BAD_REQUEST),
        handled.body,
    )
}
