//! Legacy tokens and keys, found by a keyword before them: the contexts
//! where real logs carry them, and the look-alikes that must stay.
//!
//! Each line is a template: `<<token>>` stands for a generated legacy API
//! token, `<<key>>` for a generated legacy Global API key, and `<<sha>>`
//! (40 hex digits), `<<uuid>>` and `<<hex32>>` for generated look-alikes.

mod common;

use std::sync::Arc;

use cfscrub::engine::{Finding, Kind, KindSet, Level, Scanner, sample};
use rand::rngs::StdRng;

use common::{assert_same, label, redact_split};

/// Values generated for one template.
struct Values {
    token: String,
    key: String,
    sha: String,
    uuid: String,
    hex32: String,
}

impl Values {
    fn new(rng: &mut StdRng) -> Values {
        let uuid = format!(
            "{}-{}-4{}-a{}-{}",
            sample::hex(rng, 8),
            sample::hex(rng, 4),
            sample::hex(rng, 3),
            sample::hex(rng, 3),
            sample::hex(rng, 12)
        );
        Values {
            token: sample::legacy_token(rng),
            key: sample::legacy_global_key(rng),
            sha: sample::hex(rng, 40),
            uuid,
            hex32: sample::hex(rng, 32),
        }
    }

    /// Fills in `template` and returns the input, the expected output and
    /// the kinds expected, in order.
    fn fill(&self, template: &str) -> (Vec<u8>, Vec<u8>, Vec<Kind>) {
        let mut input = Vec::new();
        let mut output = Vec::new();
        let mut kinds = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find("<<") {
            let close = open + rest[open..].find(">>").expect("closing >>");
            input.extend_from_slice(&rest.as_bytes()[..open]);
            output.extend_from_slice(&rest.as_bytes()[..open]);
            let (value, kind) = match &rest[open + 2..close] {
                "token" => (&self.token, Some(Kind::LegacyToken)),
                "key" => (&self.key, Some(Kind::LegacyGlobalKey)),
                "sha" => (&self.sha, None),
                "uuid" => (&self.uuid, None),
                "hex32" => (&self.hex32, None),
                other => panic!("unknown placeholder {other}"),
            };
            input.extend_from_slice(value.as_bytes());
            match kind {
                Some(kind) => {
                    output.extend_from_slice(&label(kind));
                    kinds.push(kind);
                }
                None => output.extend_from_slice(value.as_bytes()),
            }
            rest = &rest[close + 2..];
        }
        input.extend_from_slice(rest.as_bytes());
        output.extend_from_slice(rest.as_bytes());
        (input, output, kinds)
    }
}

/// Lines as real logs and configuration dumps write a Cloudflare
/// credential: each placeholder must be found and redacted.
const POSITIVE: &[&str] = &[
    // Environment assignments and shell exports.
    "CF_API_TOKEN=<<token>>\n",
    "export CLOUDFLARE_API_TOKEN=\"<<token>>\"\n",
    "export CLOUDFLARE_API_TOKEN='<<token>>'\n",
    "env: CF_API_KEY=<<key>> CF_API_EMAIL=ops@example.com\n",
    "CLOUDFLARE_API_KEY=<<key>>\n",
    "CF_DNS_API_TOKEN=<<token>>\n",
    "CF_ZONE_API_TOKEN=<<token>>\n",
    "declare -x CF_TOKEN=\"<<token>>\"\n",
    // acme.sh's dnsapi variables.
    "[Mon Jan  1 00:00:00 UTC 2024] SAVED_CF_Token='<<token>>'\n",
    "CF_Key=\"<<key>>\"\n",
    // JSON fields.
    "{\"cloudflare_api_token\":\"<<token>>\"}\n",
    "{\"level\":\"debug\",\"cloudflare\":{\"api_key\":\"<<key>>\"}}\n",
    "{\"config\": {\"CLOUDFLARE_API_TOKEN\": \"<<token>>\", \"zone\": 1}}\n",
    // JSON inside a JSON string, with escaped quotes.
    "{\"msg\":\"{\\\"cf_api_token\\\":\\\"<<token>>\\\"}\"}\n",
    // YAML.
    "cf_api_key: <<key>>\n",
    "  cloudflare_api_token: \"<<token>>\"\n",
    "- name: CLOUDFLARE_API_TOKEN\n  value: x\nCLOUDFLARE_API_TOKEN: <<token>>\n",
    // HTTP header dumps.
    "X-Auth-Key: <<key>>\r\n",
    "> X-Auth-Key: <<key>>\r\n",
    "x-auth-key:<<key>>\n",
    "headers={'X-Auth-Email': 'ops@example.com', 'X-Auth-Key': '<<key>>'}\n",
    "Header: map[X-Auth-Key:[<<key>>]]\n",
    // Command lines.
    "curl -H 'X-Auth-Key: <<key>>' https://api.cloudflare.com/client/v4/zones\n",
    "curl -H \"X-Auth-Email: a@example.com\" -H \"X-Auth-Key: <<key>>\"\n",
    "curl https://api.cloudflare.com/client/v4/user/tokens/verify \
     -H \"Authorization: Bearer <<token>>\"\n",
    "wrangler deploy --cloudflare-api-token=<<token>>\n",
    "kubectl create secret generic cloudflare-api-token-secret \
     --from-literal=api-token=<<token>>\n",
    // A HAR file's header list.
    "{\"name\":\"X-Auth-Key\",\"value\":\"<<key>>\"},\n",
    // Terraform and ini files.
    "cloudflare_api_token = \"<<token>>\"\n",
    "  cloudflare_api_key   = \"<<key>>\"\n",
    "dns_cloudflare_api_token = <<token>>\n",
    "dns_cloudflare_api_key=<<key>>\n",
    // Prose in a log message, any case.
    "WARN using Cloudflare token <<token>> for zone example.com\n",
    "CLOUDFLARE TOKEN: <<token>>\n",
    // URL-encoded query strings.
    "GET /cb?next=%2Fsetup%3Fcf_api_token%3D<<token>> HTTP/1.1\n",
    "data=%7B%22cloudflare_api_key%22%3A%22<<key>>%22%7D\n",
    // Several on one line, and Windows line ends.
    "CF_API_TOKEN=<<token>> CF_API_KEY=<<key>>\r\n",
    // A keyword among NUL bytes and non-ASCII text.
    "\0\u{fffd}cf_api_token\0<<token>>\0\n",
];

/// Lines with a keyword and a value that is not a credential, or a
/// credential that is too far from the keyword: nothing is redacted.
const NEGATIVE: &[&str] = &[
    // Git commit ids.
    "      uses: cloudflare/wrangler-action@<<sha>>\n",
    "cloudflare: checkout <<sha>> done\n",
    // UUIDs and request ids.
    "cloudflare request <<uuid>> failed\n",
    // OpenStack's request ids: `req-` and a UUID, 40 characters in all.
    "cloudflare [req-<<uuid>> 113d3a99c3da401fbd62cc2caa5b96d2]\n",
    "cloudflare x-request-id: <<uuid>>\n",
    "cloudflare cf-ray: 8f3a2b1c4d5e6f70-SJC\n",
    "cloudflare {\"id\":\"<<uuid>>\",\"ray\":\"8f3a2b1c4d5e6f70\"}\n",
    // 32-character hex ids: zone, account and trace ids.
    "cloudflare zone_id=<<hex32>> account_id=<<hex32>>\n",
    "GET https://api.cloudflare.com/client/v4/zones/<<hex32>>/dns_records\n",
    "cloudflare trace <<hex32>><<hex32>>\n",
    // Identifiers and words of the right length.
    "cloudflare_worker_deployment_status_flag is set\n",
    "cloudflare CLOUDFLARE_WORKER_DEPLOYMENT_STATUS_FLAG=1\n",
    // The value on the next line.
    "CF_API_TOKEN=\n<<token>>\n",
    "X-Auth-Key:\r\n<<key>>\r\n",
    // No keyword on the line.
    "token=<<token>>\n",
    "key: <<key>>\n",
    "cloudflare\nAuthorization: Bearer <<token>>\n",
];

fn kinds_of(findings: &[Finding]) -> Vec<Kind> {
    findings.iter().map(|f| f.kind).collect()
}

#[test]
fn positive_contexts_redacted() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(0x1e6a);
    for template in POSITIVE {
        let values = Values::new(&mut rng);
        let (input, expected, kinds) = values.fill(template);
        let case = format!("template {template:?}");
        let mut out = Vec::new();
        let findings = scanner.redact(&input, &mut out);
        assert_same(&out, &expected, &case);
        assert_eq!(kinds_of(&findings), kinds, "{case}: kinds");
        for finding in &findings {
            assert_eq!(finding.level, Level::Contextual, "{case}: level");
        }
    }
}

#[test]
fn positive_contexts_split_everywhere() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(0x5b17);
    for template in POSITIVE {
        let values = Values::new(&mut rng);
        let (input, expected, kinds) = values.fill(template);
        for at in 0..=input.len() {
            let case = format!("template {template:?} split at {at}");
            let result = redact_split(&scanner, &input, at);
            assert_same(&result.out, &expected, &case);
            assert_eq!(kinds_of(&result.findings), kinds, "{case}: kinds");
        }
    }
}

#[test]
fn negative_contexts_untouched() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(0x7e6a);
    for template in NEGATIVE {
        let values = Values::new(&mut rng);
        let (input, _, _) = values.fill(template);
        let case = format!("template {template:?}");
        let mut out = Vec::new();
        let findings = scanner.redact(&input, &mut out);
        assert!(findings.is_empty(), "{case}: {:?}", kinds_of(&findings));
        assert_same(&out, &input, &case);
        for at in 0..=input.len() {
            let result = redact_split(&scanner, &input, at);
            let case = format!("{case} split at {at}");
            assert_same(&result.out, &input, &case);
        }
    }
}

#[test]
fn keyword_then_value_in_next_chunk() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(21);
    for (keyword, kind) in [
        ("CF_API_TOKEN=", Kind::LegacyToken),
        ("X-Auth-Key: ", Kind::LegacyGlobalKey),
        ("cloudflare_api_token = \"", Kind::LegacyToken),
    ] {
        let value = sample::credential(&mut rng, kind);
        let input = format!("{keyword}{value}\n");
        let mut redactor = scanner.redactor();
        let mut sink = common::Collect::default();
        let Ok(()) = redactor.push(keyword.as_bytes(), &mut sink);
        let Ok(()) = redactor.push(format!("{value}\n").as_bytes(), &mut sink);
        let Ok(()) = redactor.finish(&mut sink);
        let mut expected = keyword.as_bytes().to_vec();
        expected.extend_from_slice(&label(kind));
        expected.push(b'\n');
        assert_same(&sink.out, &expected, keyword);
        assert_eq!(kinds_of(&sink.findings), [kind], "{keyword}");
        assert!(input.len() > keyword.len());
    }
}

/// The value must start within the context window after the keyword:
/// 128 bytes by default, counted from the keyword's end.
#[test]
fn value_beyond_window_untouched() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(5);
    let token = sample::legacy_token(&mut rng);
    let inside = format!("cloudflare{}{token}\n", " ".repeat(127));
    let mut out = Vec::new();
    let findings = scanner.redact(inside.as_bytes(), &mut out);
    assert_eq!(kinds_of(&findings), [Kind::LegacyToken], "127 bytes away");
    let beyond = format!("cloudflare{}{token}\n", " ".repeat(128));
    out.clear();
    let findings = scanner.redact(beyond.as_bytes(), &mut out);
    assert!(findings.is_empty(), "128 bytes away: found");
    assert_same(&out, beyond.as_bytes(), "128 bytes away");
    let wide = Arc::new(Scanner::builder().window(512).build().unwrap());
    out.clear();
    let findings = wide.redact(beyond.as_bytes(), &mut out);
    assert_eq!(kinds_of(&findings), [Kind::LegacyToken], "window of 512");
}

#[test]
fn legacy_key_lengths() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(9);
    for len in 30..=50 {
        let key = format!("a1{}", sample::hex(&mut rng, len - 2));
        let input = format!("X-Auth-Key: {key}\n");
        let mut out = Vec::new();
        let findings = scanner.redact(input.as_bytes(), &mut out);
        let expected = (37..=45).contains(&len) && len != 40;
        assert_eq!(!findings.is_empty(), expected, "hex key of {len} digits");
    }
}

#[test]
fn custom_keyword_finds_token() {
    let mut builder = Scanner::builder();
    let scanner = Arc::new(builder.keyword(b"MY_DNS_SECRET").build().unwrap());
    let mut rng = common::rng(13);
    let token = sample::legacy_token(&mut rng);
    let input = format!("my_dns_secret={token}\n");
    let mut out = Vec::new();
    let findings = scanner.redact(input.as_bytes(), &mut out);
    assert_eq!(kinds_of(&findings), [Kind::LegacyToken]);
    let default = common::default_scanner();
    out.clear();
    assert!(default.redact(input.as_bytes(), &mut out).is_empty());
}

#[test]
fn legacy_kinds_switched_off() {
    let mut kinds = KindSet::all();
    kinds.remove(Kind::LegacyToken);
    kinds.remove(Kind::LegacyGlobalKey);
    let scanner = Arc::new(Scanner::builder().kinds(kinds).build().unwrap());
    let values = Values::new(&mut common::rng(17));
    for template in POSITIVE {
        let (input, _, _) = values.fill(template);
        let mut out = Vec::new();
        let findings = scanner.redact(&input, &mut out);
        assert!(findings.is_empty(), "template {template:?}");
        assert_same(&out, &input, template);
    }
}

/// An operator's keyword that contains a prefix does not hide the
/// credential that starts inside it.
#[test]
fn custom_keyword_containing_prefix() {
    let mut builder = Scanner::builder();
    let scanner = Arc::new(builder.keyword(b"secret_cfut_").build().unwrap());
    let mut rng = common::rng(19);
    let credential = sample::prefixed(&mut rng, Kind::UserToken);
    let input = format!("secret_{credential}\n");
    let mut out = Vec::new();
    let findings = scanner.redact(input.as_bytes(), &mut out);
    assert_eq!(kinds_of(&findings), [Kind::UserToken]);
    assert_same(
        &out,
        b"secret_[REDACTED:user_token]\n",
        "keyword with prefix",
    );
}
