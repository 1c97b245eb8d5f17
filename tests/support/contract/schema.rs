//! Checking JSON against SolvaPay's published OpenAPI file: an operation's request or
//! response schema, its `$ref`s inlined, compiled as JSON Schema draft 4 (the dialect of
//! OpenAPI 3.0's schemas) with formats checked.

use serde_json::Value;

/// The validator of `schema`, a schema of `spec`.
pub fn validator(spec: &Value, schema: &Value) -> jsonschema::Validator {
    let schema = inline(schema, spec, 0);
    assert!(schema.is_object(), "the contract has a schema");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Asserts that `instance` (`what`, in the message) matches `schema`.
pub fn assert_valid(spec: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors: Vec<String> = validator(spec, schema)
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the contract: {errors:?}\n{instance:#}"
    );
}

/// The JSON schema of `method path`'s answer with `status`.
pub fn response_schema<'a>(spec: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    &operation(spec, method, path)["responses"][status.to_string()]["content"]["application/json"]
        ["schema"]
}

/// The JSON schema of `method path`'s request body.
pub fn request_schema<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    &operation(spec, method, path)["requestBody"]["content"]["application/json"]["schema"]
}

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is in the contract");
    op
}

/// Replaces every `$ref` to `#/components/schemas/X` with X itself.
fn inline(schema: &Value, spec: &Value, depth: usize) -> Value {
    assert!(depth < 32, "reference cycle");
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference.trim_start_matches("#/components/schemas/");
                return inline(&spec["components"]["schemas"][name], spec, depth + 1);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), inline(v, spec, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline(v, spec, depth + 1)).collect())
        }
        other => other.clone(),
    }
}
