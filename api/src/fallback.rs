//! Answers for requests no handler took: 405 with `Allow` when the path exists under
//! another method, else 404. The table is built from the OpenAPI document, so it always
//! matches the routes actually served.

use actix_web::dev::ResourceDef;
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ApiError, problem, problem_response};

pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<&'static str>)>,
}

impl RouteTable {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut routes: Vec<(ResourceDef, Vec<&'static str>)> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (present, name) in [
                    (item.get.is_some(), "GET"),
                    (item.post.is_some(), "POST"),
                    (item.put.is_some(), "PUT"),
                    (item.patch.is_some(), "PATCH"),
                    (item.delete.is_some(), "DELETE"),
                ] {
                    if present {
                        methods.push(name);
                    }
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        routes.push((ResourceDef::new("/openapi.json"), vec!["GET"]));
        Self { routes }
    }

    /// Methods served on `path`, if any route matches it. A literal route wins over a
    /// templated one (`/invitations/accept` is not the invitation with id "accept").
    pub fn allowed(&self, path: &str) -> Option<Vec<&'static str>> {
        let mut allowed: Vec<&'static str> = Vec::new();
        let literal = self
            .routes
            .iter()
            .any(|(def, _)| !def.is_prefix() && def.pattern() == Some(path));
        for (def, methods) in &self.routes {
            if def.is_match(path) && (!literal || def.pattern() == Some(path)) {
                for m in methods {
                    if !allowed.contains(m) {
                        allowed.push(m);
                    }
                }
            }
        }
        (!allowed.is_empty()).then_some(allowed)
    }
}

/// 405 for a method a literal route of this exact path does not serve.
pub fn method_not_allowed(req: &HttpRequest, table: &RouteTable) -> Option<HttpResponse> {
    let literal = table
        .routes
        .iter()
        .any(|(def, _)| def.pattern() == Some(req.path()));
    literal.then(|| answer(req, table))
}

pub async fn not_matched(req: HttpRequest, table: web::Data<RouteTable>) -> HttpResponse {
    answer(&req, &table)
}

fn answer(req: &HttpRequest, table: &RouteTable) -> HttpResponse {
    match table.allowed(req.path()) {
        Some(methods) => {
            let allow = methods.join(", ");
            let body = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed here; allowed: {allow}", req.method()),
            );
            let mut response = problem_response(&body);
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(ALLOW, value);
            }
            response
        }
        None => problem_response(&ApiError::NotFound.problem()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_list_their_methods() {
        let table = RouteTable::from_openapi(&crate::openapi::document());
        assert_eq!(
            table.allowed("/api/v1/users/12"),
            Some(vec!["GET", "PATCH"])
        );
        assert_eq!(table.allowed("/api/v1/users"), Some(vec!["GET"]));
        assert_eq!(
            table.allowed("/api/v1/invitations"),
            Some(vec!["GET", "POST"])
        );
        assert_eq!(table.allowed("/api/v1/nothing-here"), None);
        assert_eq!(
            table.allowed("/api/v1/invitations/accept"),
            Some(vec!["POST"])
        );
    }
}
