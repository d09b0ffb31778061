//! The OpenAPI document is generated from the routes and lists every one of them.

use tap_proxy::server::api_router;
use tap_testkit::SPEC_ROUTES;

#[test]
fn openapi_lists_every_spec_route_with_methods() {
    let (_, api) = api_router();
    let doc = serde_json::to_value(&api).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let expected = SPEC_ROUTES;
    for (path, methods) in expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from /openapi.json"));
        for m in *methods {
            let op = item.get(*m).unwrap_or_else(|| panic!("{m} {path} missing"));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} has no responses"
            );
            // Every `{param}` in the path is declared.
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{m} {path} does not declare path parameter {name}"
                );
            }
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert!(schemes.get("bearer").is_some() && schemes.get("agent_key").is_some());
}
