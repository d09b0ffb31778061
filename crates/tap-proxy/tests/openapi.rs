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
/// Every `$ref` in `v`, recursively.
fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                out.push(r.to_owned());
            }
            m.values().for_each(|x| refs(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The schema of a JSON content block, resolved through `$ref`.
fn json_schema<'a>(
    doc: &'a serde_json::Value,
    content: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let s = content.get("application/json")?.get("schema")?;
    match s.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => doc.pointer(r.trim_start_matches('#')),
        None => Some(s),
    }
}

#[test]
fn openapi_documents_request_and_response_schemas_of_every_admin_route() {
    let (_, api) = api_router();
    let doc = serde_json::to_value(&api).unwrap();
    // A valid document: unique operation ids, and every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "no schema is referenced at all");
    for r in &all {
        assert!(
            r.starts_with("#/components/schemas/")
                && doc.pointer(r.trim_start_matches('#')).is_some(),
            "dangling reference {r}"
        );
    }
    let mut missing = Vec::new();
    for (path, methods) in SPEC_ROUTES.iter().filter(|(p, _)| p.starts_with("/team")) {
        for m in *methods {
            let op = &doc["paths"][*path][*m];
            let body_method = matches!(*m, "post" | "put" | "patch");
            let takes_body = !path.ends_with("/enable")
                && !path.ends_with("/disable")
                && !path.ends_with("/rotate-key")
                && !path.ends_with("/revoke")
                && !path.ends_with("/approve")
                && !path.ends_with("/deny")
                && !path.ends_with("/test");
            if body_method
                && takes_body
                && json_schema(&doc, &op["requestBody"]["content"]).is_none()
            {
                missing.push(format!("{m} {path}: request body schema"));
            }
            let ok = ["200", "201"]
                .iter()
                .find_map(|s| op["responses"].get(*s))
                .map(|r| &r["content"]);
            // The JSON-lines export is not a JSON document.
            if !path.ends_with("/export") && ok.and_then(|c| json_schema(&doc, c)).is_none() {
                missing.push(format!("{m} {path}: success response schema"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented schemas:\n{}",
        missing.join("\n")
    );
    // A few schemas in detail: the views never carry a value or a stored hash
    // (a generated key or password is shown once, by the create answers only).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let approval = &schemas["ApprovalView"]["properties"];
    for field in [
        "txn_id",
        "agent_id",
        "credential",
        "method",
        "target",
        "status",
        "min_approvals",
    ] {
        assert!(approval.get(field).is_some(), "ApprovalView lacks {field}");
    }
    for (name, s) in schemas {
        let props = s["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        if name.ends_with("View") {
            for forbidden in [
                "value",
                "sealed_value",
                "key_hash",
                "token_hash",
                "password_hash",
            ] {
                assert!(
                    !props.iter().any(|p| p == forbidden),
                    "{name} exposes {forbidden}"
                );
            }
        }
    }
}

#[test]
fn openapi_documents_the_answers_of_every_agent_route() {
    let (_, api) = api_router();
    let doc = serde_json::to_value(&api).unwrap();
    let mut missing = Vec::new();
    for (path, methods) in SPEC_ROUTES.iter().filter(|(p, _)| !p.starts_with("/team")) {
        for m in *methods {
            let op = &doc["paths"][*path][*m];
            // What a JSON client reads on success: the 202 of /forward (its
            // 200 is the upstream's own body), the primer's text, else 200.
            let (status, content_type) = match *path {
                "/forward" => ("202", "application/json"),
                "/instructions" => ("200", "text/plain"),
                "/metrics" => ("200", "application/openmetrics-text"),
                _ => ("200", "application/json"),
            };
            let content = &op["responses"][status]["content"];
            if content
                .get(content_type)
                .and_then(|c| c.get("schema"))
                .is_none()
            {
                missing.push(format!("{m} {path}: {status} {content_type} schema"));
            }
            // Every refusal documents the one error body (SPEC §3).
            for (code, r) in op["responses"].as_object().into_iter().flatten() {
                let error = code.starts_with('4') || (code.starts_with('5') && *path != "/health");
                if error
                    && json_schema(&doc, &r["content"])
                        .is_none_or(|s| s != &doc["components"]["schemas"]["ErrorBody"])
                {
                    missing.push(format!("{m} {path}: {code} is not ErrorBody"));
                }
            }
            // Agent routes name their authentication.
            if path.starts_with("/agent") || *path == "/forward" {
                let names_key = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x.get("agent_key").is_some()));
                if !names_key {
                    missing.push(format!("{m} {path}: no agent_key security"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    let schemas = &doc["components"]["schemas"];
    for field in ["error", "error_code", "detail", "fix"] {
        assert!(
            schemas["ErrorBody"]["properties"].get(field).is_some(),
            "ErrorBody lacks {field}"
        );
    }
    for field in ["txn_id", "status", "poll_url", "approval_url"] {
        assert!(
            schemas["PendingView"]["properties"].get(field).is_some(),
            "PendingView lacks {field}"
        );
    }
    // The public shape of /agent/services: services keyed by name.
    let services = &schemas["ServicesView"]["properties"]["services"];
    assert_eq!(services["type"], "object", "{services}");
    assert!(services.get("additionalProperties").is_some(), "{services}");
}

#[test]
fn openapi_lists_the_passkey_endpoints_of_spec_14() {
    let (_, api) = api_router();
    let doc = serde_json::to_value(&api).unwrap();
    for (path, method, ok) in [
        ("/passkeys/register/begin", "post", "200"),
        ("/passkeys/register/finish", "post", "201"),
        ("/passkeys/{id}", "delete", "200"),
        ("/approve/{txn}/passkey/begin", "post", "200"),
        ("/approve/{txn}/passkey/finish", "post", "200"),
        ("/approve/{txn}/deny", "post", "303"),
        ("/login/passkey/begin", "post", "200"),
        ("/login/passkey/finish", "post", "200"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"][ok].is_object(), "{method} {path}: no {ok}");
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{method} {path} does not declare {name}"
            );
        }
        // The JSON endpoints refuse with the one error body (the deny form answers pages).
        for (code, r) in op["responses"].as_object().into_iter().flatten() {
            if ok != "303" && (code.starts_with('4') || code.starts_with('5')) {
                assert_eq!(
                    json_schema(&doc, &r["content"]),
                    Some(&doc["components"]["schemas"]["ErrorBody"]),
                    "{method} {path} {code}"
                );
            }
        }
    }
}
