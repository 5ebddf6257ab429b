//! actix-web with Tollgate: the `Auth` middleware, `Claims` and
//! `Option<Claims>` extractors, and a scope requirement on one scope.
//!
//! ```text
//! cargo run --example actix --features actix
//! ```
//! It prints a token to try with `curl`.

#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpServer, web};
use tollgate::actix::{Auth, Claims, RequireScope};
use tollgate::core::{Algorithm, Authenticator, TrustedIssuer, VerifyingKey};

const SECRET: &[u8] = b"example secret, at least 32 bytes long";

async fn me(claims: Claims) -> String {
    format!("hello {}\n", claims.subject().unwrap_or("?"))
}

async fn reports(claims: Claims) -> String {
    format!("reports for {}\n", claims.subject().unwrap_or("?"))
}

fn main() -> std::io::Result<()> {
    let auth: Authenticator = Authenticator::builder()
        .issuer(
            TrustedIssuer::new("https://issuer.example")
                .audience("api")
                .key(VerifyingKey::hmac(SECRET, Algorithm::HS256).unwrap()),
        )
        .build()
        .unwrap();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"iss": "https://issuer.example", "aud": "api",
                                    "sub": "alice", "scope": "reports:read", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    println!("curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8085/reports");
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .service(
                    web::scope("/reports")
                        .wrap(RequireScope::all(["reports:read"]))
                        .route("", web::get().to(reports)),
                )
                .route("/me", web::get().to(me))
                .wrap(Auth::new(auth.clone()).realm("api"))
        })
        .bind(("127.0.0.1", 8085))?
        .run(),
    )
}
