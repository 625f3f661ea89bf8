//! OpenAPI modifiers shared by the till's and the cloud's API documents: the bearer scheme,
//! and every error status an operation can answer, each with the `{error, message}` body.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

/// Every operation of a document, to change in place.
pub fn operations_mut(api: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}

/// Defines the `bearer` security scheme the operations reference.
#[derive(Debug)]
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Documents the given error statuses on every operation that does not list them (and 401
/// on every secured one), with the `ErrorBody` schema: the service answers every failure
/// through one mapping, so generated clients and API fuzzers know each status it can give.
#[derive(Debug)]
pub struct ErrorResponses(pub &'static [(&'static str, &'static str)]);

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, api: &mut OpenApi) {
        for op in operations_mut(api) {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let extra = self
                .0
                .iter()
                .copied()
                .chain(secured.then_some(("401", "No valid credential")));
            for (status, text) in extra {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(text)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
}
