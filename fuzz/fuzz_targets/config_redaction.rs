//! Config error redaction: arbitrary text spliced into `sources.yaml` templates around a
//! secret, `hunter2-fuzz`, in a secret field. Whatever the splice does to the file, a load
//! error must not quote the secret (unless the splice moved it into a key, a tag or a
//! field whose value errors may name, such as `auth_type` or `{ env: … }`).
//!
//! Input: one byte picks the template; the rest is split at the first NUL into the text
//! before and after (NUL cannot appear in YAML, so no template loses anything).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// `{P}` and `{S}` are the two spliced texts; every template holds the marker in a value.
const TEMPLATES: [&str; 6] = [
    // The template: fuzz text in the upstream value, the secret after it.
    "sources:\n  s:\n    upstream: {P}\n    auth_type: bearer\n    bearer_token: hunter2-fuzz\n{S}",
    // Fuzz text around the secret itself.
    "sources:\n  s:\n    upstream: https://api.example.com\n    auth_type: bearer\n    bearer_token: {P}hunter2-fuzz{S}\n",
    // Fuzz text in a field name's position.
    "sources:\n  s:\n    upstream: https://api.example.com\n    auth_type: api_key\n    api_key_name: X-Key\n    {P}: hunter2-fuzz{S}\n",
    // Fuzz text in the header map: a name, and around the value.
    "sources:\n  s:\n    upstream: https://api.example.com\n    auth_type: none\n    headers:\n      {P}: hunter2-fuzz{S}\n",
    "sources:\n  s:\n    upstream: https://api.example.com\n    auth_type: none\n    headers: {X-Key: {P}hunter2-fuzz{S}}\n",
    // A query API key, and fuzz text in the source id's position.
    "sources:\n  {P}:\n    upstream: https://api.example.com\n    auth_type: api_key\n    api_key_name: key\n    api_key_in: query\n    api_key_value: hunter2-fuzz{S}\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let (before, after) = rest.split_once('\0').unwrap_or((rest, ""));
    let template = TEMPLATES[usize::from(pick) % TEMPLATES.len()];
    let (head, tail) = template.split_once("{P}").expect("{P} in every template");
    let (middle, end) = tail.split_once("{S}").expect("{S} after {P}");
    let text = [head, before, middle, after, end].concat();
    credproxy_fuzz::load_and_check(text.as_bytes());
});
