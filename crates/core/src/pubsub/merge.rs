//! One Prometheus text for a whole server from the texts of its workers:
//! samples with the same name and labels are added up (counters, histogram
//! buckets, sums and counts, and gauges such as open connections, which
//! then read for the whole server), each family once with its HELP and TYPE
//! lines and its samples together, in the order the families first appear.
//! Series only one worker has (a route only it served, a `worker`-labelled
//! line) pass through unchanged.

use rustc_hash::FxHashMap;
use std::fmt::Write as _;

#[derive(Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    /// Sample keys (name and labels) in first-seen order, and their sums.
    order: Vec<String>,
    sums: FxHashMap<String, f64>,
}

/// A sample's name without the histogram suffixes.
fn family_of(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

/// The family called `name`, registered (in first-seen order) if new.
fn entry<'m>(
    names: &mut Vec<String>,
    families: &'m mut FxHashMap<String, Family>,
    name: &str,
) -> &'m mut Family {
    if !families.contains_key(name) {
        names.push(name.to_owned());
    }
    families.entry(name.to_owned()).or_default()
}

pub(crate) fn merge<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut families: FxHashMap<String, Family> = FxHashMap::default();
    for text in texts {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                let fam = entry(&mut names, &mut families, name);
                fam.help.get_or_insert_with(|| help.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                let fam = entry(&mut names, &mut families, name);
                fam.kind.get_or_insert_with(|| kind.to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                let Some((key, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let Ok(v) = value.parse::<f64>() else {
                    continue;
                };
                let name = key.split('{').next().unwrap_or(key);
                // `x_bucket`, `x_sum`, `x_count` belong to `x` when `x` is a
                // histogram (or summary) seen already; any other name is its own.
                let base = family_of(name);
                let grouped = families
                    .get(base)
                    .and_then(|f| f.kind.as_deref())
                    .is_some_and(|k| k == "histogram" || k == "summary");
                let fam = entry(&mut names, &mut families, if grouped { base } else { name });
                match fam.sums.get_mut(key) {
                    Some(sum) => *sum += v,
                    None => {
                        fam.order.push(key.to_owned());
                        fam.sums.insert(key.to_owned(), v);
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for name in names {
        let fam = &families[&name];
        if let Some(h) = &fam.help {
            let _ = writeln!(out, "# HELP {name} {h}");
        }
        if let Some(k) = &fam.kind {
            let _ = writeln!(out, "# TYPE {name} {k}");
        }
        for key in &fam.order {
            let _ = writeln!(out, "{key} {}", fam.sums[key]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn sums_matching_series_and_keeps_families_together() {
        let a = "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{route=\"/a\"} 2\n\
                 # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 0.5\nlat_count 2\n";
        let b = "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{route=\"/a\"} 3\nreqs_total{route=\"/b\"} 1\n\
                 # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 0\nlat_bucket{le=\"+Inf\"} 1\nlat_sum 0.25\nlat_count 1\n\
                 # HELP up Up.\n# TYPE up gauge\nup{worker=\"7\"} 1\n";
        let m = merge([a, b]);
        assert_eq!(
            m,
            "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{route=\"/a\"} 5\nreqs_total{route=\"/b\"} 1\n\
             # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 0.75\nlat_count 3\n\
             # HELP up Up.\n# TYPE up gauge\nup{worker=\"7\"} 1\n"
        );
    }
}
