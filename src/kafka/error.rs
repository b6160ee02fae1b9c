//! Errors that stop the Kafka mode.

use std::fmt;
use std::io;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether a topic is read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An input topic.
    Input,
    /// An output topic.
    Output,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Input => "input",
            Role::Output => "output",
        })
    }
}

/// A record of an input topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordId {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Offset in the input partition.
    pub offset: i64,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// An error that stops the Kafka mode. None of them carries a record's
/// bytes or a setting's value.
#[derive(Debug)]
pub enum Error {
    /// An option or a `-X` setting is invalid.
    Config {
        /// The option, and the setting's name for `-X`.
        option: String,
        /// The problem with it.
        detail: String,
    },
    /// No broker responded to a metadata request at start-up.
    Connect {
        /// The `--brokers` list.
        brokers: String,
        /// librdkafka's description of the error.
        detail: String,
    },
    /// A broker rejected the SASL credentials.
    Authentication {
        /// librdkafka's description of the error.
        detail: String,
    },
    /// A named topic, or the output topic of an assigned one, does not
    /// exist.
    UnknownTopic {
        /// The topic's name.
        topic: String,
        /// Whether it was to be read or written.
        role: Role,
    },
    /// The output topic has fewer partitions than its input topic, so a
    /// record could not keep its partition number.
    TooFewPartitions {
        /// The input topic.
        input: String,
        /// Its partition count.
        input_partitions: usize,
        /// The output topic.
        output: String,
        /// Its partition count.
        output_partitions: usize,
    },
    /// A redacted record is larger than the producer or the output topic
    /// accepts.
    RecordTooLarge {
        /// The input record.
        record: RecordId,
        /// Its size as produced: value and key, in bytes.
        size: usize,
        /// The output topic.
        output: String,
    },
    /// A header name of a record is not UTF-8, so with header redaction
    /// its value cannot be read.
    HeaderName {
        /// The input record.
        record: RecordId,
        /// The header's index, from 0.
        index: usize,
    },
    /// The output topic, or the partition of a record in it, disappeared
    /// while the member ran: the topic was deleted.
    OutputMissing {
        /// The input record whose copy was not delivered.
        record: RecordId,
        /// The output topic.
        output: String,
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
    },
    /// The broker rejected a redacted record for good.
    Delivery {
        /// The input record.
        record: RecordId,
        /// The output topic.
        output: String,
        /// The reason.
        code: RDKafkaErrorCode,
    },
    /// Another producer with the same transactional id started, so this
    /// member may no longer write.
    Fenced {
        /// The transactional id.
        transactional_id: String,
        /// librdkafka's description of the error.
        detail: String,
    },
    /// The producer failed for good (a fatal idempotence or transaction
    /// error).
    Produce {
        /// librdkafka's description of the error.
        detail: String,
    },
    /// The consumer failed for good (a topic deleted or not authorized,
    /// or a fatal client error).
    Consume {
        /// librdkafka's description of the error.
        detail: String,
    },
    /// Writing the findings failed.
    Findings {
        /// The findings destination.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A librdkafka call failed.
    Client {
        /// The action that failed.
        action: &'static str,
        /// The librdkafka error.
        source: KafkaError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { option, detail } => {
                write!(f, "invalid {option}: {detail}")
            }
            Error::Connect { brokers, detail } => write!(
                f,
                "cannot reach the Kafka brokers {brokers}: {detail}; check \
                 --brokers and the -X security settings"
            ),
            Error::Authentication { detail } => write!(
                f,
                "authentication with the Kafka brokers failed: {detail}; \
                 check the -X sasl.* settings"
            ),
            Error::UnknownTopic { topic, role } => write!(
                f,
                "{role} topic {topic} not found: create it first (cfscrub \
                 never creates topics)"
            ),
            Error::TooFewPartitions {
                input,
                input_partitions,
                output,
                output_partitions,
            } => write!(
                f,
                "output topic {output} has fewer partitions than input \
                 topic {input} ({output_partitions} < {input_partitions}): \
                 add partitions to {output}, or use --partitioner key"
            ),
            Error::RecordTooLarge { record, size, output } => write!(
                f,
                "record {record} is {size} bytes after redaction, more than \
                 the producer or output topic {output} accepts: raise \
                 -X producer.message.max.bytes and the topic's \
                 max.message.bytes; offsets stay before this record"
            ),
            Error::HeaderName { record, index } => write!(
                f,
                "record {record}: the name of header {index} is not UTF-8, \
                 so cfscrub cannot read the header to redact its value: run \
                 without --redact-headers, which copies headers byte for \
                 byte; offsets stay before this record"
            ),
            Error::OutputMissing { record, output, code } => write!(
                f,
                "output topic {output} not found while delivering record \
                 {record} ({code}): it was deleted; create it again and \
                 restart, and offsets stay before this record, so the \
                 restart delivers it"
            ),
            Error::Delivery { record, output, code } => write!(
                f,
                "delivery of record {record} to {output} failed: {code}; \
                 offsets stay before this record, so a restart retries it"
            ),
            Error::Fenced { transactional_id, detail } => write!(
                f,
                "fenced: another member started with transactional id \
                 {transactional_id} ({detail}); this member stopped without \
                 committing, so give each member its own --transactional-id"
            ),
            Error::Produce { detail } => {
                write!(f, "producing failed: {detail}")
            }
            Error::Consume { detail } => {
                write!(f, "consuming failed: {detail}")
            }
            Error::Findings { path, source } => {
                write!(f, "write to findings {path} failed: {source}")
            }
            Error::Client { action, source } => {
                write!(f, "{action} failed: {}", describe(source))
            }
        }
    }
}

impl From<super::settings::ConfigError> for Error {
    fn from(error: super::settings::ConfigError) -> Error {
        Error::Config { option: error.option, detail: error.detail }
    }
}

impl Error {
    /// Returns the error for a record whose copy the producer or the
    /// broker rejected with `code`; `size` is the copy's value and key
    /// bytes.
    pub(crate) fn undelivered(
        record: RecordId,
        output: String,
        size: usize,
        code: RDKafkaErrorCode,
    ) -> Error {
        match code {
            RDKafkaErrorCode::MessageSizeTooLarge => {
                Error::RecordTooLarge { record, size, output }
            }
            RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition => {
                Error::OutputMissing { record, output, code }
            }
            code => Error::Delivery { record, output, code },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Findings { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Describes a librdkafka error without the value of a setting, which
/// `KafkaError`'s own message includes and which may be a password.
pub(crate) fn describe(error: &KafkaError) -> String {
    match error {
        KafkaError::ClientConfig(_, description, key, _) => {
            if is_secret(key) {
                format!("invalid value for {key}")
            } else {
                format!("{description} ({key})")
            }
        }
        other => other.to_string(),
    }
}

/// Returns whether the value of librdkafka setting `key` may be a secret.
fn is_secret(key: &str) -> bool {
    ["password", "secret", "jaas", ".pem", "key", "token"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaConfRes;

    use super::*;

    #[test]
    fn config_error_hides_secret_value() {
        let error = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\"".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        assert!(!describe(&error).contains("hunter2"));
    }

    #[test]
    fn config_error_names_plain_key() {
        let error = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property".into(),
            "no.such.thing".into(),
            "1".into(),
        );
        let text = describe(&error);
        assert!(text.contains("no.such.thing"), "{text}");
        assert!(text.contains("No such configuration property"), "{text}");
    }
}
