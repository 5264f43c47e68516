//! Cross-site request forgery protection for the forms of the pages (sign in and out,
//! accept an invitation, choose a password, request a reset): a double-submit token. A
//! page with a form sets a random `cmo_csrf` cookie (HttpOnly, SameSite=Strict) once and
//! puts the same value in a hidden field; a submitted form is taken only when both are
//! there and equal. Another site can make a browser post a form, but can neither read
//! nor set this cookie, so it cannot know the value to send. The session cookie's
//! SameSite=Lax is the second wall for signed-in forms; the token also stops login CSRF
//! (someone else's session planted in the victim's browser), which SameSite does not.
//!
//! Links that carry their own secret (acknowledge, unsubscribe) need no token: the
//! secret in the URL is what an attacker lacks, and mail clients' one-click unsubscribe
//! posts without a page.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::de::DeserializeOwned;

/// The cookie holding the browser's token.
pub const COOKIE: &str = "cmo_csrf";
/// The hidden form field holding the same token.
pub const FIELD: &str = "csrf";

/// This browser's token: its cookie's, or a new one (set by [`CsrfToken::set_on`]).
#[derive(Debug, Clone)]
pub struct CsrfToken {
    pub value: String,
    new: bool,
}

impl CsrfToken {
    pub fn of(req: &HttpRequest) -> CsrfToken {
        match req.cookie(COOKIE).map(|c| c.value().to_string()) {
            Some(v) if is_well_formed(&v) => CsrfToken {
                value: v,
                new: false,
            },
            _ => CsrfToken {
                value: crate::secrets::new_link_secret(),
                new: true,
            },
        }
    }

    /// Sets the cookie on a page's response when the browser had none.
    pub fn set_on(&self, response: &mut HttpResponse, secure: bool) {
        if !self.new {
            return;
        }
        let cookie = Cookie::build(COOKIE, self.value.clone())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .finish();
        if let Err(err) = response.add_cookie(&cookie) {
            tracing::warn!(%err, "cannot set the form token cookie");
        }
    }
}

fn is_well_formed(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a submitted form carries this browser's token (compared in constant time).
pub fn is_valid(req: &HttpRequest, submitted: Option<&str>) -> bool {
    let (Some(cookie), Some(sent)) = (req.cookie(COOKIE), submitted) else {
        return false;
    };
    if !is_well_formed(cookie.value()) {
        return false;
    }
    let (cookie, sent) = (cookie.value().as_bytes(), sent.as_bytes());
    cookie.len() == sent.len()
        && cookie
            .iter()
            .zip(sent)
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A form that carries the hidden form-token field.
pub trait Protected {
    fn csrf(&self) -> Option<&str>;
}

/// A submitted form, taken only when it carries this browser's form token: every form
/// handler takes its form through this, so none can forget the check. Otherwise the
/// answer is [`refused`] (403) and the handler does not run.
pub struct CheckedForm<T>(pub T);

impl<T> CheckedForm<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// A form sent without this browser's token.
#[derive(Debug)]
pub struct ForeignForm;

impl std::fmt::Display for ForeignForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the form token is missing or does not match")
    }
}

impl ResponseError for ForeignForm {
    fn status_code(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    fn error_response(&self) -> HttpResponse {
        refused()
    }
}

impl<T: DeserializeOwned + Protected + 'static> FromRequest for CheckedForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let form = web::Form::<T>::from_request(&req, payload);
        Box::pin(async move {
            let form = form.await?.into_inner();
            if is_valid(&req, form.csrf()) {
                Ok(CheckedForm(form))
            } else {
                Err(ForeignForm.into())
            }
        })
    }
}

/// The page a refused form gets: reload and send again.
pub fn refused() -> HttpResponse {
    crate::pages::html_response(
        StatusCode::FORBIDDEN,
        mail::page(
            "This form has expired",
            "It was not sent from this site's page, or the page is too old. Open the page again and send the form from there.",
            None,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_browsers_own_token_passes() {
        let token = crate::secrets::new_link_secret();
        let req = TestRequest::default()
            .cookie(Cookie::new(COOKIE, token.clone()))
            .to_http_request();
        assert!(is_valid(&req, Some(&token)));
        assert!(!is_valid(&req, Some(&crate::secrets::new_link_secret())));
        assert!(!is_valid(&req, None));
        let bare = TestRequest::default().to_http_request();
        assert!(!is_valid(&bare, Some(&token)), "no cookie, no form");
        assert!(!CsrfToken::of(&bare).value.is_empty());
        assert_eq!(CsrfToken::of(&req).value, token, "kept while it lives");
    }
}
