//! Checks real answers of the public API against its OpenAPI document, so the document's
//! schemas cannot drift from what the handlers send: a missing required field, a wrong type,
//! a value outside an enum, or a field the schema does not list is a failure.
//!
//! Covers the part of OpenAPI 3.0.3 the document uses: `$ref`, `type`, `required`,
//! `properties`, `items`, `nullable` (with 3.0.3's meaning: it adds null to a stated `type`),
//! `enum`, `minimum`, `maximum`, `maxLength`, the two patterns it uses (decimal sats, node ids)
//! and `date-time`. Whether the document itself is valid OpenAPI is `scripts/check-openapi`'s
//! job (run by tests/http_openapi.rs).

use lsp_node::http::public::openapi::{NODE_ID_PATTERN, SCID_PATTERN};
use serde_json::Value;

const SATS_PATTERN: &str = "^[0-9]+$";

const SCHEMAS: &str = "#/components/schemas/";

/// Whether `body`, answered with `status` to `method path` (query string allowed), is what
/// `document` promises: the operation's success schema for 200, the error schema otherwise.
pub fn check_answer(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or(path);
    let operation = &document["paths"][path][method.to_ascii_lowercase()];
    let schema = match (operation.is_null(), status) {
        (true, 200) => {
            return Err(format!(
                "{method} {path} answered 200 but is not documented"
            ))
        }
        (true, _) => Value::String(format!("{SCHEMAS}Error")),
        (false, 200) => {
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].clone()
        }
        (false, _) => operation["responses"]["default"]["content"]["application/json"]["schema"]
            ["$ref"]
            .clone(),
    };
    let reference = schema
        .as_str()
        .ok_or_else(|| format!("{method} {path}: no response schema for {status}"))?;
    conforms(
        document,
        &serde_json::json!({ "$ref": reference }),
        body,
        "$",
    )
    .map_err(|e| format!("{method} {path} ({status}): {e}"))
}

fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix(SCHEMAS)
            .ok_or_else(|| format!("{at}: unsupported reference {reference}"))?;
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: schema {name} does not exist"));
        }
        return conforms(document, target, value, at);
    }
    if value.is_null() {
        // OpenAPI 3.0.3: `nullable` adds null to the `type` beside it, only when there is one,
        // and an `enum` beside it must list null too.
        let nullable = schema.get("nullable") == Some(&Value::Bool(true))
            && schema.get("type").is_some()
            && schema
                .get("enum")
                .and_then(Value::as_array)
                .is_none_or(|allowed| allowed.contains(&Value::Null));
        return match nullable {
            true => Ok(()),
            false => Err(format!("{at} is null, which the schema does not allow")),
        };
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{at} is {value}, not one of {allowed:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        None => Ok(()),
        Some("object") => {
            let fields = value
                .as_object()
                .ok_or_else(|| format!("{at} is {value}, not an object"))?;
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}.{name} is required but missing"));
                }
            }
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return Ok(());
            };
            for (name, field) in fields {
                let field_schema = properties
                    .get(name)
                    .ok_or_else(|| format!("{at}.{name} is sent but not documented"))?;
                conforms(document, field_schema, field, &format!("{at}.{name}"))?;
            }
            Ok(())
        }
        Some("array") => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{at} is {value}, not an array"))?;
            for (index, item) in items.iter().enumerate() {
                conforms(document, &schema["items"], item, &format!("{at}[{index}]"))?;
            }
            Ok(())
        }
        Some("string") => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{at} is {value}, not a string"))?;
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let matches = match pattern {
                    SATS_PATTERN => !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
                    NODE_ID_PATTERN => {
                        text.len() == 66
                            && (text.starts_with("02") || text.starts_with("03"))
                            && text.bytes().all(|b| b.is_ascii_hexdigit())
                    }
                    SCID_PATTERN => {
                        let parts: Vec<&str> = text.split('x').collect();
                        parts.len() == 3
                            && parts
                                .iter()
                                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    }
                    other => return Err(format!("{at}: unsupported pattern {other}")),
                };
                if !matches {
                    return Err(format!("{at} is {text:?}, which does not match {pattern}"));
                }
            }
            if let Some(longest) = schema.get("maxLength").and_then(Value::as_u64) {
                if text.chars().count() as u64 > longest {
                    return Err(format!("{at} is longer than {longest} characters"));
                }
            }
            if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && !looks_like_rfc3339(text)
            {
                return Err(format!("{at} is {text:?}, not an RFC 3339 date-time"));
            }
            Ok(())
        }
        Some("integer") => {
            let number = value
                .as_i64()
                .map(i128::from)
                .or_else(|| value.as_u64().map(i128::from))
                .ok_or_else(|| format!("{at} is {value}, not an integer"))?;
            let minimum = schema.get("minimum").and_then(Value::as_i64);
            let maximum = schema.get("maximum").and_then(Value::as_u64);
            match (minimum, maximum) {
                (Some(minimum), _) if number < i128::from(minimum) => {
                    Err(format!("{at} is {number}, below {minimum}"))
                }
                (_, Some(maximum)) if number > i128::from(maximum) => {
                    Err(format!("{at} is {number}, above {maximum}"))
                }
                _ => Ok(()),
            }
        }
        Some("boolean") => match value.is_boolean() {
            true => Ok(()),
            false => Err(format!("{at} is {value}, not a boolean")),
        },
        Some(other) => Err(format!("{at}: unsupported schema type {other}")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` followed by an optional fraction and a zone (`Z` or `±HH:MM`).
fn looks_like_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_at = |positions: &[usize]| positions.iter().all(|&i| bytes[i].is_ascii_digit());
    bytes.len() >= 20
        && digits_at(&[0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't')
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (text.ends_with('Z') || text.ends_with('z') || text[19..].contains(['+', '-']))
}
