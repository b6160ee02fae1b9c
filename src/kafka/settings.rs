//! The settings of the Kafka mode: topics, delivery guarantee, limits and
//! the librdkafka settings of its two clients.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "kafka")]
use rdkafka::ClientConfig;

/// Settings that cfscrub sets itself and that `-X` may not change, with
/// the option to use instead.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "--brokers"),
    ("metadata.broker.list", "--brokers"),
    ("group.id", "--group"),
    ("enable.auto.commit", "nothing: cfscrub commits offsets itself"),
    ("enable.auto.offset.store", "nothing: cfscrub stores offsets itself"),
    ("transactional.id", "--transactional-id"),
];

/// Maximum length of a topic name, as the broker checks it.
const MAX_TOPIC_LEN: usize = 249;

/// An invalid option or `-X` setting. It never contains a setting's
/// value, which may be a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The option, and the setting's name for `-X`.
    pub option: String,
    /// The problem with it.
    pub detail: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.option, self.detail)
    }
}

impl std::error::Error for ConfigError {}

/// The client, or clients, that a `-X` setting applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Both the consumer and the producer.
    Both,
    /// Only the consumer: `-X consumer.KEY=VALUE`.
    Consumer,
    /// Only the producer: `-X producer.KEY=VALUE`.
    Producer,
}

/// One librdkafka setting passed through with `-X`.
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    /// The client it applies to.
    pub scope: Scope,
    /// The librdkafka name, without the scope prefix.
    pub key: String,
    /// The value, which may be a secret such as `sasl.password`.
    pub value: String,
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value stays out of debug output: it may be a password.
        f.debug_struct("Property")
            .field("scope", &self.scope)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Property {
    /// Parses `KEY=VALUE`, `consumer.KEY=VALUE` or `producer.KEY=VALUE`.
    ///
    /// Errors name the key but never the value, which may be a secret.
    pub fn parse(text: &str) -> Result<Property, ConfigError> {
        let Some((name, value)) = text.split_once('=') else {
            return Err(ConfigError {
                option: "-X".to_owned(),
                detail: "expected KEY=VALUE, such as \
                         -X compression.type=zstd"
                    .to_owned(),
            });
        };
        let (scope, key) = if let Some(key) = name.strip_prefix("consumer.") {
            (Scope::Consumer, key)
        } else if let Some(key) = name.strip_prefix("producer.") {
            (Scope::Producer, key)
        } else {
            (Scope::Both, name)
        };
        if key.is_empty() {
            return Err(ConfigError {
                option: format!("-X {name}"),
                detail: "the setting name is empty".to_owned(),
            });
        }
        if let Some((_, instead)) = RESERVED.iter().find(|(k, _)| *k == key) {
            return Err(ConfigError {
                option: format!("-X {name}"),
                detail: format!("cfscrub sets {key} itself; use {instead}"),
            });
        }
        Ok(Property { scope, key: key.to_owned(), value: value.to_owned() })
    }
}

/// The delivery guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Offsets are committed only for records whose redacted copy the
    /// broker acknowledged; a crash replays the records after the last
    /// commit.
    AtLeastOnce,
    /// Records and offsets are committed in one Kafka transaction.
    ExactlyOnce {
        /// The producer's `transactional.id`.
        transactional_id: String,
    },
}

/// The choice of output partition for each redacted record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Partitioning {
    /// The partition number of the input record.
    Same,
    /// A hash of the output key, as librdkafka's `partitioner` setting
    /// computes it (cfscrub's default is `murmur2_random`, the Java
    /// client's hash).
    Key,
}

/// The name of an output topic, made from the input topic's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTemplate {
    template: String,
}

impl OutputTemplate {
    /// Parses a template in which `{topic}` stands for the input topic.
    ///
    /// The text around `{topic}` may contain only the characters of a
    /// topic name: ASCII letters, digits, `.`, `_` and `-`.
    pub fn parse(template: &str) -> Result<OutputTemplate, ConfigError> {
        let invalid = |detail: String| ConfigError {
            // Quoted, so that a line break or a control character in the
            // name cannot split or garble the one-line message.
            option: format!("--output-topic {template:?}"),
            detail,
        };
        let literal = template.replace("{topic}", "");
        if template.is_empty() {
            return Err(invalid("the name is empty".to_owned()));
        }
        if let Some(bad) = literal.chars().find(|c| !is_topic_char(*c)) {
            return Err(invalid(format!(
                "{bad:?} is not allowed in a topic name (allowed: ASCII \
                 letters, digits, '.', '_', '-' and the placeholder \
                 {{topic}})"
            )));
        }
        if literal.len() > MAX_TOPIC_LEN {
            return Err(invalid(format!(
                "the name is longer than {MAX_TOPIC_LEN} characters"
            )));
        }
        Ok(OutputTemplate { template: template.to_owned() })
    }

    /// Returns the output topic for records of `input`.
    pub fn output_for(&self, input: &str) -> String {
        self.template.replace("{topic}", input)
    }

    /// Returns whether every input topic goes to one output topic.
    pub fn is_fixed(&self) -> bool {
        !self.template.contains("{topic}")
    }
}

impl fmt::Display for OutputTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Everything the Kafka mode needs besides the scanner and the metrics.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `bootstrap.servers`: `HOST:PORT[,HOST:PORT]…`.
    pub brokers: String,
    /// The consumer group id.
    pub group: String,
    /// Input topic names, and regular expressions that start with `^`.
    pub inputs: Vec<String>,
    /// The output topic of each input topic.
    pub output: OutputTemplate,
    /// Settings passed through to librdkafka, in command-line order.
    pub properties: Vec<Property>,
    /// At-least-once or exactly-once.
    pub guarantee: Guarantee,
    /// Whether record keys are redacted too.
    pub redact_keys: bool,
    /// Whether header values are redacted too.
    pub redact_headers: bool,
    /// The choice of output partitions.
    pub partitioning: Partitioning,
    /// Time to deliver in-flight records and commit, after SIGTERM or
    /// SIGINT and when partitions are revoked.
    pub grace_period: Duration,
    /// Records consumed but not yet acknowledged by the broker at which
    /// consumption pauses.
    pub max_in_flight: usize,
    /// Time between offset commits, or the longest a transaction stays
    /// open.
    pub commit_interval: Duration,
    /// Time allowed for the first metadata request and for initialising
    /// transactions at start-up.
    pub connect_timeout: Duration,
}

impl Settings {
    /// Returns the input topics given by name, without the patterns.
    pub fn named_inputs(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(String::as_str).filter(|t| !t.starts_with('^'))
    }

    /// Checks the combination of settings that clap cannot check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let config = |option: &str, detail: String| ConfigError {
            option: option.to_owned(),
            detail,
        };
        if self.inputs.is_empty() {
            return Err(config("--input-topic", "missing".to_owned()));
        }
        for input in self.named_inputs() {
            if input.is_empty() || !input.chars().all(is_topic_char) {
                return Err(config(
                    &format!("--input-topic {input:?}"),
                    "not a valid topic name; start a regular expression \
                     with ^"
                        .to_owned(),
                ));
            }
            let output = self.output.output_for(input);
            if output == input {
                return Err(config(
                    &format!("--output-topic {}", self.output),
                    format!(
                        "the output topic of {input} is {input} itself, \
                         so cfscrub would read its own output"
                    ),
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err(config(
                "--max-in-flight",
                "must be at least 1".into(),
            ));
        }
        if self.commit_interval.is_zero() {
            return Err(config(
                "--commit-interval",
                "must be more than 0 seconds".into(),
            ));
        }
        if let Guarantee::ExactlyOnce { transactional_id } = &self.guarantee
            && transactional_id.is_empty()
        {
            return Err(config("--transactional-id", "empty".into()));
        }
        Ok(())
    }
}

#[cfg(feature = "kafka")]
impl Settings {
    /// Returns the consumer's librdkafka configuration.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            // A new group starts at the oldest record, so no record that
            // is still retained goes unredacted.
            .set("auto.offset.reset", "earliest")
            // Lag metrics come from the statistics, every 5 s.
            .set("statistics.interval.ms", "5000")
            // librdkafka 2.4 and later wait this long before fetching
            // again for a partition whose fetched records exceed
            // queued.min.messages. Its default of 1 s left the pipeline
            // idle between fetches: 1,000,000 loghub records took 9.5 s
            // with it and 4.2 s with 10 ms (benches/kafka.sh, one run).
            .set("fetch.queue.backoff.ms", "10");
        if matches!(self.guarantee, Guarantee::ExactlyOnce { .. }) {
            // Input written by transactional producers is read only once
            // committed, so an aborted record is never redacted and
            // forwarded. This is also librdkafka's default; -X may
            // change it.
            config.set("isolation.level", "read_committed");
        }
        self.apply(&mut config, Scope::Consumer);
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }

    /// Returns the producer's librdkafka configuration.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // Retries then neither reorder nor duplicate records.
            .set("enable.idempotence", "true")
            // The Java client's key hash, so --partitioner key puts a
            // key where a Java producer would.
            .set("partitioner", "murmur2_random");
        self.apply(&mut config, Scope::Producer);
        if let Guarantee::ExactlyOnce { transactional_id } = &self.guarantee {
            config.set("transactional.id", transactional_id);
        }
        config
    }

    fn apply(&self, config: &mut ClientConfig, scope: Scope) {
        for property in &self.properties {
            if property.scope == scope || property.scope == Scope::Both {
                config.set(&property.key, &property.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            brokers: "127.0.0.1:9092".into(),
            group: "g".into(),
            inputs: vec!["logs".into()],
            output: OutputTemplate::parse("{topic}.redacted").unwrap(),
            properties: Vec::new(),
            guarantee: Guarantee::AtLeastOnce,
            redact_keys: false,
            redact_headers: false,
            partitioning: Partitioning::Same,
            grace_period: Duration::from_secs(10),
            max_in_flight: 100,
            commit_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn property_scopes() {
        let cases = [
            ("compression.type=zstd", Scope::Both, "compression.type", "zstd"),
            (
                "consumer.fetch.min.bytes=1",
                Scope::Consumer,
                "fetch.min.bytes",
                "1",
            ),
            ("producer.linger.ms=5", Scope::Producer, "linger.ms", "5"),
            ("sasl.password=a=b", Scope::Both, "sasl.password", "a=b"),
            ("client.id=", Scope::Both, "client.id", ""),
        ];
        for (text, scope, key, value) in cases {
            let property = Property::parse(text).unwrap();
            assert_eq!(property.scope, scope, "{text}");
            assert_eq!(property.key, key, "{text}");
            assert_eq!(property.value, value, "{text}");
        }
    }

    #[test]
    fn property_errors_hide_values() {
        for text in ["sasl.password", "=secret", "producer.=secret"] {
            let error = Property::parse(text).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn reserved_properties_rejected() {
        for text in [
            "group.id=x",
            "consumer.enable.auto.commit=true",
            "bootstrap.servers=x:1",
            "producer.transactional.id=t",
        ] {
            let error = Property::parse(text).unwrap_err().to_string();
            assert!(error.contains("cfscrub sets"), "{error}");
        }
    }

    #[test]
    fn property_debug_hides_value() {
        let property = Property::parse("sasl.password=hunter2").unwrap();
        assert!(!format!("{property:?}").contains("hunter2"));
    }

    #[test]
    fn template_substitutes_topic() {
        let template = OutputTemplate::parse("{topic}.redacted").unwrap();
        assert_eq!(template.output_for("logs-a"), "logs-a.redacted");
        assert!(!template.is_fixed());
        let fixed = OutputTemplate::parse("clean").unwrap();
        assert_eq!(fixed.output_for("logs-a"), "clean");
        assert!(fixed.is_fixed());
    }

    #[test]
    fn template_rejects_bad_names() {
        for template in ["", "{topic} x", "out/{topic}", "{name}.x"] {
            assert!(OutputTemplate::parse(template).is_err(), "{template}");
        }
    }

    #[test]
    fn topic_name_errors_are_one_line() {
        for name in ["a\nb", "a\r\nb", "\n", "x\u{1b}[2Jy"] {
            let error = OutputTemplate::parse(name).unwrap_err().to_string();
            assert!(!error.contains(['\n', '\r', '\u{1b}']), "{error:?}");
            assert!(error.contains(&format!("{name:?}")), "{error:?}");

            let mut settings = settings();
            settings.inputs = vec![name.to_owned()];
            let error = settings.validate().unwrap_err().to_string();
            assert!(!error.contains(['\n', '\r', '\u{1b}']), "{error:?}");
            assert!(error.contains(&format!("{name:?}")), "{error:?}");
        }
    }

    #[test]
    fn output_equal_to_input_rejected() {
        let mut settings = settings();
        settings.output = OutputTemplate::parse("logs").unwrap();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("read its own output"), "{error}");
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn commits_stay_with_cfscrub() {
        let mut settings = settings();
        settings.properties.push(Property {
            scope: Scope::Both,
            key: "linger.ms".into(),
            value: "20".into(),
        });
        let consumer = settings.consumer_config();
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("linger.ms"), Some("20"));
        let producer = settings.producer_config();
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("transactional.id"), None);
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn scoped_property_reaches_one_client() {
        let mut settings = settings();
        settings.properties.push(Property::parse("producer.acks=1").unwrap());
        assert_eq!(settings.producer_config().get("acks"), Some("1"));
        assert_eq!(settings.consumer_config().get("acks"), None);
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn exactly_once_sets_transactional_id() {
        let mut settings = settings();
        settings.guarantee =
            Guarantee::ExactlyOnce { transactional_id: "t-1".into() };
        let producer = settings.producer_config();
        assert_eq!(producer.get("transactional.id"), Some("t-1"));
        let consumer = settings.consumer_config();
        assert_eq!(consumer.get("isolation.level"), Some("read_committed"));
    }
}
