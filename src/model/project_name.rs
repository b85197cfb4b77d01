//! The rule for project names. A project name becomes an EC2 tag value and an AWS Budget
//! name and travels through Slurm job comments, so it is held to the characters that are
//! safe in all of them: ASCII letters, digits and `. _ : / @ + -`, 1 to 128 characters.
//! No spaces (several jobs' projects are joined with a space on a shared node) and no
//! `=` or `,` (the separators of projects_list.conf).

/// The longest project name accepted.
pub const MAX_LEN: usize = 128;

/// Characters allowed besides ASCII letters and digits.
pub const PUNCTUATION: &str = "._:/@+-";

/// Whether `c` may appear in a project name.
pub fn is_allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || PUNCTUATION.contains(c)
}

/// Checks `name` against the rule; the error says which character or limit failed.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty project name".into());
    }
    if let Some(c) = name.chars().find(|&c| !is_allowed_char(c)) {
        return Err(format!(
            "project name {} contains {c:?}; project names use only letters, digits and {PUNCTUATION}",
            printable(name)
        ));
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "project name of {} characters is longer than {MAX_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// A user-supplied string made safe to show in one line of a message: control
/// characters escaped, quoted, cut at 64 characters.
pub fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tag_safe_names() {
        for ok in ["ProjectA", "proj-1", "a.b_c:d/e@f+g", "X", &"p".repeat(MAX_LEN)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Project A",
            "a,b",
            "a=b",
            "'; touch /tmp/x; '",
            "$(id)",
            "`id`",
            "a\nb",
            "projé",
            "a\u{0}b",
            &"p".repeat(MAX_LEN + 1),
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn printable_escapes_and_cuts() {
        assert_eq!(printable("a\nb"), "\"a\\nb\"");
        assert!(printable(&"x".repeat(1024)).ends_with("...\""));
        assert!(printable(&"x".repeat(1024)).len() < 80);
    }
}
