//! One search over the input for every prefix and every context keyword.
//!
//! Keywords are matched ASCII-case-insensitively, but aho-corasick's SIMD
//! searcher (Teddy) only works case-sensitively: its case-insensitive mode
//! falls back to a byte-at-a-time automaton (aho-corasick 1.1,
//! `util/prefilter.rs`). So each keyword is searched by its first
//! [`STEM_LEN`] bytes, written in every combination of upper and lower
//! case, and a hit is then compared with the whole keyword.

use aho_corasick::{AhoCorasick, MatchKind, packed};

use super::kind::{Kind, KindSet};

/// Bytes of a keyword that the search looks for in every case variant.
/// Three keeps the number of patterns small (at most 8 per keyword) while
/// matching as often as Teddy's 3-byte fingerprint does anyway.
const STEM_LEN: usize = 3;

/// What a pattern of the search stands for.
#[derive(Clone, Debug, Default)]
struct Target {
    /// The kind whose literal prefix this pattern is.
    prefix: Option<Kind>,
    /// Indexes into [`Prefilter::keywords`] of the keywords that start with
    /// this stem, longest first.
    keywords: Vec<usize>,
}

/// What the bytes at a search hit turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    /// The literal prefix of `kind`.
    Prefix(Kind),
    /// A keyword that ends at this offset from the hit.
    Keyword { len: usize },
    /// The buffer ends before a keyword could be told apart from a longer
    /// one or from no keyword.
    NeedMore,
    /// The stem matched but no keyword does.
    NoMatch,
}

enum Searcher {
    Teddy(packed::Searcher),
    Automaton(AhoCorasick),
}

/// The compiled search, built once per scanner.
pub(crate) struct Prefilter {
    searcher: Searcher,
    patterns: Vec<Vec<u8>>,
    targets: Vec<Target>,
    /// Keywords, lowercase.
    keywords: Vec<Vec<u8>>,
    longest_pattern: usize,
}

impl Prefilter {
    /// Builds the search for the prefixes of `kinds` and, when a
    /// contextual kind is on, for `keywords`.
    pub(crate) fn new(kinds: KindSet, keywords: &[Vec<u8>]) -> Prefilter {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut index_of =
            |pattern: &[u8], targets: &mut Vec<Target>| match patterns
                .iter()
                .position(|p| p == pattern)
            {
                Some(index) => index,
                None => {
                    patterns.push(pattern.to_vec());
                    targets.push(Target::default());
                    patterns.len() - 1
                }
            };
        for kind in kinds.iter() {
            if let Some(prefix) = kind.prefix() {
                let index = index_of(prefix, &mut targets);
                targets[index].prefix = Some(kind);
            }
        }
        let contextual = kinds.iter().any(Kind::is_contextual);
        let mut lowered: Vec<Vec<u8>> = Vec::new();
        if contextual {
            lowered =
                keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
            lowered.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            lowered.dedup();
        }
        for (keyword_index, keyword) in lowered.iter().enumerate() {
            let stem = &keyword[..keyword.len().min(STEM_LEN)];
            for variant in case_variants(stem) {
                let index = index_of(&variant, &mut targets);
                targets[index].keywords.push(keyword_index);
            }
        }
        let longest_pattern = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let searcher = build_searcher(&patterns);
        Prefilter {
            searcher,
            patterns,
            targets,
            keywords: lowered,
            longest_pattern,
        }
    }

    /// Length of the longest keyword, or 0 without keywords.
    pub(crate) fn longest_keyword(&self) -> usize {
        self.keywords.first().map_or(0, Vec::len)
    }

    /// Finds the first pattern at or after `from`, returning its start and
    /// its pattern index.
    pub(crate) fn find(
        &self,
        buf: &[u8],
        from: usize,
    ) -> Option<(usize, usize)> {
        if from >= buf.len() || self.patterns.is_empty() {
            return None;
        }
        let span = from..buf.len();
        match &self.searcher {
            Searcher::Teddy(searcher) => searcher
                .find_in(buf, aho_corasick::Span::from(span))
                .map(|m| (m.start(), m.pattern().as_usize())),
            Searcher::Automaton(automaton) => {
                let input = aho_corasick::Input::new(buf).span(span);
                automaton
                    .find(input)
                    .map(|m| (m.start(), m.pattern().as_usize()))
            }
        }
    }

    /// Decides what the pattern `pattern` found at `buf[start..]` is.
    pub(crate) fn resolve(
        &self,
        buf: &[u8],
        start: usize,
        pattern: usize,
        at_end: bool,
    ) -> Hit {
        let target = &self.targets[pattern];
        if let Some(kind) = target.prefix {
            return Hit::Prefix(kind);
        }
        let rest = &buf[start..];
        for &index in &target.keywords {
            let keyword = &self.keywords[index];
            if rest.len() < keyword.len() {
                let could_match =
                    keyword[..rest.len()].eq_ignore_ascii_case(rest);
                if could_match && !at_end {
                    return Hit::NeedMore;
                }
            } else if rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
                // Keywords are sorted longest first, so this is the
                // longest one that matches here.
                return Hit::Keyword { len: keyword.len() };
            }
        }
        Hit::NoMatch
    }

    /// Returns the start of the earliest suffix of `buf` that is a proper
    /// prefix of a pattern, so that a pattern cut by the end of the buffer
    /// is searched again once the rest of it has arrived.
    pub(crate) fn partial_at_end(&self, buf: &[u8]) -> Option<usize> {
        let window = self.longest_pattern.saturating_sub(1).min(buf.len());
        let first = buf.len() - window;
        (first..buf.len()).find(|&start| {
            let tail = &buf[start..];
            self.patterns
                .iter()
                .any(|p| p.len() > tail.len() && p.starts_with(tail))
        })
    }
}

fn build_searcher(patterns: &[Vec<u8>]) -> Searcher {
    let mut config = packed::Config::new();
    config.match_kind(packed::MatchKind::LeftmostFirst);
    let teddy = config.builder().extend(patterns).build();
    if let Some(searcher) = teddy {
        tracing::debug!(patterns = patterns.len(), "prefilter uses Teddy");
        return Searcher::Teddy(searcher);
    }
    tracing::debug!(
        patterns = patterns.len(),
        "prefilter uses an automaton: Teddy is not available"
    );
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(patterns)
        .expect("patterns are few and short, so the automaton always builds");
    Searcher::Automaton(automaton)
}

/// Returns every spelling of `stem` with each ASCII letter in either case.
fn case_variants(stem: &[u8]) -> Vec<Vec<u8>> {
    let mut variants = vec![Vec::with_capacity(stem.len())];
    for &byte in stem {
        let lower = byte.to_ascii_lowercase();
        let upper = byte.to_ascii_uppercase();
        let mut next = Vec::with_capacity(variants.len() * 2);
        for variant in &variants {
            let mut with_lower = variant.clone();
            with_lower.push(lower);
            if upper != lower {
                let mut with_upper = variant.clone();
                with_upper.push(upper);
                next.push(with_upper);
            }
            next.push(with_lower);
        }
        variants = next;
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn case_variants_cover_each_letter() {
        let variants = case_variants(b"c_f");
        assert_eq!(variants.len(), 4);
        assert!(variants.contains(&b"C_F".to_vec()));
        assert!(variants.contains(&b"c_f".to_vec()));
    }

    #[test]
    fn finds_prefix_and_keyword_in_any_case() {
        let prefilter = Prefilter::new(
            KindSet::all(),
            &keywords(&["cloudflare", "cf_api_token"]),
        );
        let buf = b"xx CloudFlare yy CF_API_TOKEN= cfut_";
        let (start, pattern) = prefilter.find(buf, 0).unwrap();
        assert_eq!(start, 3);
        let hit = prefilter.resolve(buf, start, pattern, true);
        assert_eq!(hit, Hit::Keyword { len: 10 });
        let (start, pattern) = prefilter.find(buf, start + 1).unwrap();
        assert_eq!(start, 17);
        let hit = prefilter.resolve(buf, start, pattern, true);
        assert_eq!(hit, Hit::Keyword { len: 12 });
        let (start, pattern) = prefilter.find(buf, start + 1).unwrap();
        assert_eq!(start, 31);
        let hit = prefilter.resolve(buf, start, pattern, true);
        assert_eq!(hit, Hit::Prefix(Kind::UserToken));
    }

    #[test]
    fn keyword_cut_by_buffer_end_needs_more() {
        let prefilter =
            Prefilter::new(KindSet::all(), &keywords(&["cloudflare"]));
        let buf = b"a cloudfl";
        let (start, pattern) = prefilter.find(buf, 0).unwrap();
        assert_eq!(
            prefilter.resolve(buf, start, pattern, false),
            Hit::NeedMore
        );
        assert_eq!(prefilter.resolve(buf, start, pattern, true), Hit::NoMatch);
    }

    #[test]
    fn partial_pattern_at_end_found() {
        let prefilter =
            Prefilter::new(KindSet::all(), &keywords(&["x-auth-key"]));
        assert_eq!(prefilter.partial_at_end(b"abc cfu"), Some(4));
        assert_eq!(prefilter.partial_at_end(b"abc X-"), Some(4));
        assert_eq!(prefilter.partial_at_end(b"abc\n"), None);
    }

    #[test]
    fn keywords_off_without_contextual_kinds() {
        let kinds: KindSet = [Kind::UserToken].into_iter().collect();
        let prefilter = Prefilter::new(kinds, &keywords(&["cloudflare"]));
        assert_eq!(prefilter.find(b"cloudflare cfat_", 0), None);
        assert_eq!(prefilter.longest_keyword(), 0);
    }
}
