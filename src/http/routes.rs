//! The route tables of the endpoint modules (REST, desk, attachments): path patterns (matchit)
//! to the methods each path answers, and what a lookup finds. One place, so that every module
//! answers an unknown path and a wrong method the same way.

use hyper::Method;
use std::collections::HashMap;

/// Path pattern → the routes of the methods it answers.
pub(super) struct Routes<R>(matchit::Router<Vec<(Method, R)>>);

/// What a request's path and method find in a table.
pub(super) enum Lookup<R> {
    /// No route has this path.
    NoPath,
    /// The path exists, not with this method: the methods it answers (for 405's `Allow`).
    WrongMethod(String),
    /// The route and the path's parameters by name.
    Found(R, HashMap<String, String>),
}

impl<R: Copy> Routes<R> {
    /// `table`: (path pattern, method, route); a path appears once per method it answers.
    pub(super) fn new(table: &[(&'static str, Method, R)]) -> Self {
        let mut by_path: Vec<(&'static str, Vec<(Method, R)>)> = Vec::new();
        for (path, method, route) in table {
            match by_path.iter_mut().find(|(p, _)| p == path) {
                Some((_, methods)) => methods.push((method.clone(), *route)),
                None => by_path.push((path, vec![(method.clone(), *route)])),
            }
        }
        let mut router = matchit::Router::new();
        for (path, methods) in by_path {
            // The tables are fixed and free of conflicts; a failure here is a programming error.
            router
                .insert(path, methods)
                .expect("valid, distinct route patterns");
        }
        Routes(router)
    }

    /// Whether some route has this path (whatever the method).
    pub(super) fn has_path(&self, path: &str) -> bool {
        self.0.at(path).is_ok()
    }

    pub(super) fn lookup(&self, path: &str, method: &Method) -> Lookup<R> {
        let Ok(matched) = self.0.at(path) else {
            return Lookup::NoPath;
        };
        match matched.value.iter().find(|(m, _)| m == method) {
            Some((_, route)) => Lookup::Found(
                *route,
                matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            None => Lookup::WrongMethod(
                matched
                    .value
                    .iter()
                    .map(|(m, _)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_method_and_names_the_others() {
        let routes = Routes::new(&[
            ("/a/{id}", Method::GET, 1),
            ("/a/{id}", Method::PUT, 2),
            ("/b", Method::POST, 3),
        ]);
        match routes.lookup("/a/x", &Method::PUT) {
            Lookup::Found(2, params) => assert_eq!(params["id"], "x"),
            _ => panic!("PUT /a/x is route 2"),
        }
        match routes.lookup("/a/x", &Method::DELETE) {
            Lookup::WrongMethod(allow) => assert_eq!(allow, "GET, PUT"),
            _ => panic!("DELETE /a/x is a wrong method"),
        }
        assert!(matches!(routes.lookup("/c", &Method::GET), Lookup::NoPath));
        assert!(routes.has_path("/b") && !routes.has_path("/b/c"));
    }
}
