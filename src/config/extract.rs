//! `[extract]`: which terms are counted, and the extra stop words and watched keywords.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// The longest term or watched keyword, in characters: with the entity caps, every item of an
/// output record has a known maximum size.
const MAX_ITEM_CHARS: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Shortest counted term, in characters.
    pub min_term_chars: usize,
    /// Longest counted term, in characters.
    pub max_term_chars: usize,
    /// Extra stop words, one per line; empty for none.
    pub stop_words_file: PathBuf,
    /// Keywords counted under `keywords`.
    pub watch_keywords: Vec<String>,
}

impl ExtractConfig {
    /// The extra stop words from `stop_words_file`, read as
    /// [`parse_stop_words`](crate::extract::parse_stop_words) says.
    pub fn extra_stop_words(&self) -> Result<Vec<String>, ConfigError> {
        let path = &self.stop_words_file;
        if path.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::StopWordsFile {
            path: path.display().to_string(),
            source,
        })?;
        Ok(crate::extract::parse_stop_words(&text)
            .map(str::to_owned)
            .collect())
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.min_term_chars == 0 {
            return Err(invalid("extract.min_term_chars", 0, "must be at least 1"));
        }
        if self.max_term_chars > MAX_ITEM_CHARS {
            return Err(invalid(
                "extract.max_term_chars",
                self.max_term_chars,
                format!("must be at most {MAX_ITEM_CHARS}"),
            ));
        }
        if let Some(long) = self
            .watch_keywords
            .iter()
            .find(|k| k.chars().count() > MAX_ITEM_CHARS)
        {
            return Err(invalid(
                "extract.watch_keywords",
                format!("{:?}…", long.chars().take(20).collect::<String>()),
                format!("must not contain keywords of more than {MAX_ITEM_CHARS} characters"),
            ));
        }
        if self.max_term_chars < self.min_term_chars {
            return Err(invalid(
                "extract.max_term_chars",
                self.max_term_chars,
                format!(
                    "must be at least extract.min_term_chars ({})",
                    self.min_term_chars
                ),
            ));
        }
        if let Some(empty) = self.watch_keywords.iter().find(|k| k.trim().is_empty()) {
            return Err(invalid(
                "extract.watch_keywords",
                format!("{empty:?}"),
                "must not contain empty keywords",
            ));
        }
        Ok(())
    }
}
