//! `[window]`: the sliding windows' width and slide, how late records may be, and the memory
//! and item bounds of the counters held.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, show, ConfigError};

/// The most counters `window.max_items` may ask for per (group, pane, category).
const MAX_WINDOW_ITEMS: usize = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length.
    #[serde(with = "humantime_serde")]
    pub width: Duration,
    /// Distance between window starts.
    #[serde(with = "humantime_serde")]
    pub slide: Duration,
    /// How far the watermark trails the highest event time.
    #[serde(with = "humantime_serde")]
    pub out_of_orderness: Duration,
    /// Memory for the counters of the windows of one partition held, like "64MiB": counts are
    /// exact while they fit. Read with
    /// [`Config::memory_budget_bytes`](super::Config::memory_budget_bytes).
    #[serde(deserialize_with = "size")]
    pub memory_budget: String,
    /// Counters per (group, pane, category) at most, whatever the memory budget.
    pub max_items: usize,
    /// Groups with data in one pane of a partition at most; records of more are dead-lettered.
    pub max_groups: usize,
}

impl WindowConfig {
    /// Width and slide: whole milliseconds, the slide dividing the width at most 1000 times.
    pub(super) fn validate_timing(&self) -> Result<(), ConfigError> {
        for (key, value) in [("window.width", self.width), ("window.slide", self.slide)] {
            if value.is_zero() || value.subsec_nanos() % 1_000_000 != 0 {
                return Err(invalid(
                    key,
                    show(value),
                    "must be a positive whole number of milliseconds",
                ));
            }
        }
        if !self
            .width
            .as_millis()
            .is_multiple_of(self.slide.as_millis())
        {
            return Err(invalid(
                "window.slide",
                show(self.slide),
                format!("must divide window.width ({})", show(self.width)),
            ));
        }
        if self.width.as_millis() / self.slide.as_millis() > 1000 {
            return Err(invalid(
                "window.slide",
                show(self.slide),
                format!(
                    "is too small for window.width ({}): at most 1000 slides per window",
                    show(self.width)
                ),
            ));
        }
        Ok(())
    }

    /// The memory budget, groups and items, where each window must hold `top_k` items: the
    /// memory budget in bytes.
    pub(super) fn validate_capacity(&self, top_k: usize) -> Result<usize, ConfigError> {
        let memory_budget_bytes = parse_size(&self.memory_budget)
            .map_err(|reason| invalid("window.memory_budget", &self.memory_budget, reason))?;
        if self.max_groups == 0 {
            return Err(invalid("window.max_groups", 0, "must be at least 1"));
        }
        if self.max_items < top_k {
            return Err(invalid(
                "window.max_items",
                self.max_items,
                format!("must be at least output.top_k ({top_k})"),
            ));
        }
        if self.max_items > MAX_WINDOW_ITEMS {
            return Err(invalid(
                "window.max_items",
                self.max_items,
                format!("must be at most {MAX_WINDOW_ITEMS}"),
            ));
        }
        Ok(memory_budget_bytes)
    }
}

/// A size in bytes, like "64MiB" or "512 KiB": a whole number and a unit of B, KiB, MiB or
/// GiB (KB, MB, GB are read as the same binary units), at least 1 KiB.
fn parse_size(text: &str) -> Result<usize, String> {
    const HOW: &str = "is not a size like \"64MiB\" (a whole number of B, KiB, MiB or GiB)";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| HOW.to_owned())?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(HOW.to_owned()),
    };
    let bytes = number
        .checked_mul(unit)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| "is too large".to_owned())?;
    if bytes < 1 << 10 {
        return Err("must be at least 1KiB".to_owned());
    }
    Ok(bytes)
}

/// A size written as a string ("64MiB") or a number of bytes (as environment variables give
/// it), kept as written; [`parse_size`] reads it.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Str(String),
        Int(u64),
    }
    Ok(match Size::deserialize(d)? {
        Size::Str(s) => s,
        Size::Int(n) => n.to_string(),
    })
}
