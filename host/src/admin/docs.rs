//! `/api/docs`: the OpenAPI document rendered for people, on the server,
//! as one HTML page with no script and nothing fetched from elsewhere. It
//! reads the same document `/api/v1/openapi.json` serves, so the two
//! cannot disagree.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AdminState;

/// The page.
pub(super) async fn page(State(s): State<AdminState>) -> Response {
    let doc = super::api::openapi(&s.registry);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        render(&doc),
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A schema in a few words: a link to a named one, else its type.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        return alts.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .map(|v| esc(v.as_str().unwrap_or(&v.to_string())))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    if ty.starts_with("array") {
        if let Some(items) = schema.get("items") {
            return format!("{} of {}", esc(&ty), type_of(items));
        }
    }
    let mut out = esc(&ty);
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(out, " ({})", esc(f));
    }
    out
}

fn properties_table(out: &mut String, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Type</th><th scope=\"col\">Required</th><th scope=\"col\">Meaning</th></tr></thead><tbody>");
    for (name, p) in props {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_of(p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            esc(p.get("description").and_then(Value::as_str).unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
}

/// The whole page for `doc`.
pub fn render(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("API");
    let mut out = String::with_capacity(64 << 10);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:70rem;margin:auto;padding:1rem;line-height:1.4}}\
         table{{border-collapse:collapse;width:100%;margin:.5rem 0}}\
         td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}\
         .op{{border-top:2px solid #333;margin-top:1.5rem}}\
         .m{{font-weight:bold;font-family:monospace;padding:0 .3rem;background:#eee}}\
         code{{word-break:break-all}}\
         </style></head><body><h1>{t} {v}</h1><p>{d}</p>\
         <p>The machine-readable document: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p>",
        t = esc(title),
        v = esc(doc["info"]["version"].as_str().unwrap_or("")),
        d = esc(doc["info"]["description"].as_str().unwrap_or("")),
    );
    out.push_str("<h2>Operations</h2><nav aria-label=\"operations\"><ul>");
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = op["operationId"].as_str().unwrap_or("");
            let _ = write!(
                out,
                "<li><a href=\"#{}\"><span class=\"m\">{}</span> <code>{}</code></a> {}</li>",
                esc(id),
                esc(&method.to_ascii_uppercase()),
                esc(path),
                esc(op["summary"].as_str().unwrap_or("")),
            );
        }
    }
    out.push_str("</ul></nav>");
    for (path, item) in &paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let _ = write!(
                out,
                "<section class=\"op\" id=\"{}\"><h3><span class=\"m\">{}</span> <code>{}</code></h3><p>{}</p><p>{}</p>",
                esc(op["operationId"].as_str().unwrap_or("")),
                esc(&method.to_ascii_uppercase()),
                esc(path),
                esc(op["summary"].as_str().unwrap_or("")),
                esc(op["description"].as_str().unwrap_or("")),
            );
            if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                out.push_str("<h4>Parameters</h4><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">In</th><th scope=\"col\">Type</th><th scope=\"col\">Required</th><th scope=\"col\">Meaning</th></tr></thead><tbody>");
                for p in params {
                    let _ = write!(
                        out,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(p["name"].as_str().unwrap_or("")),
                        esc(p["in"].as_str().unwrap_or("")),
                        type_of(&p["schema"]),
                        if p["required"].as_bool() == Some(true) {
                            "yes"
                        } else {
                            ""
                        },
                        esc(p["description"].as_str().unwrap_or("")),
                    );
                }
                out.push_str("</tbody></table>");
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                out.push_str("<h4>Body</h4><ul>");
                for (media, c) in content {
                    let _ = write!(
                        out,
                        "<li><code>{}</code>: {}</li>",
                        esc(media),
                        type_of(&c["schema"])
                    );
                }
                out.push_str("</ul>");
            }
            out.push_str("<h4>Answers</h4><ul>");
            for (code, r) in op["responses"].as_object().into_iter().flatten() {
                let schema = r["content"]["application/json"]
                    .get("schema")
                    .map(type_of)
                    .unwrap_or_else(|| "no body".into());
                let _ = write!(
                    out,
                    "<li><b>{}</b> {}: {}</li>",
                    esc(if code == "default" { "any error" } else { code }),
                    esc(r["description"].as_str().unwrap_or("")),
                    schema
                );
            }
            out.push_str("</ul></section>");
        }
    }
    out.push_str("<h2>Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out,
            "<section id=\"schema-{0}\"><h3>{0}</h3><p>{1}</p>",
            esc(name),
            esc(schema["description"].as_str().unwrap_or(""))
        );
        if schema.get("properties").is_some() {
            properties_table(&mut out, schema);
        } else {
            let _ = write!(out, "<p>{}</p>", type_of(schema));
        }
        out.push_str("</section>");
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_document_is_escaped() {
        let doc = serde_json::json!({
            "info": {"title": "<script>x</script>", "version": "1", "description": "a & b"},
            "paths": {}, "components": {"schemas": {}},
        });
        let html = render(&doc);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("a &amp; b"));
    }

    #[test]
    fn every_operation_of_the_api_has_a_section() {
        let (_, registry) = crate::admin::routes();
        let doc = crate::admin::api::openapi(&registry);
        let html = render(&doc);
        for (_, item) in doc["paths"].as_object().into_iter().flatten() {
            for (_, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or("");
                assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
            }
        }
    }
}
