//! Plain-text tables for people (`report`, `budget list`, `status`): each column padded to
//! its widest cell, two spaces between columns, figures right-aligned where a table asks
//! for it, no trailing spaces. One layout, so that every table of the tool reads alike.

/// Between two columns.
const GAP: &str = "  ";

/// The widths of a table's columns, grown row by row with [`Columns::measure`] before any
/// row is laid out. Only widths are kept, never rows: a long report is produced twice,
/// once to measure and once to print, instead of being held as text.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    widths: Vec<usize>,
    /// Columns from this one on are right-aligned.
    right_from: usize,
}

/// Left-aligned columns, as narrow as their cells.
impl Default for Columns {
    fn default() -> Columns {
        Columns::at_least(&[])
    }
}

impl Columns {
    /// Left-aligned columns, none narrower than `min` says (a fixed width keeps the
    /// columns after it from moving with the values).
    pub(crate) fn at_least(min: &[usize]) -> Columns {
        Columns {
            widths: min.to_vec(),
            right_from: usize::MAX,
        }
    }

    /// Right-aligns column `first` and the ones after it (figures).
    pub(crate) fn right_aligned_from(self, first: usize) -> Columns {
        Columns {
            right_from: first,
            ..self
        }
    }

    /// Widens the columns to fit `cells`.
    pub(crate) fn measure<S: AsRef<str>>(&mut self, cells: &[S]) {
        if self.widths.len() < cells.len() {
            self.widths.resize(cells.len(), 0);
        }
        for (w, cell) in self.widths.iter_mut().zip(cells) {
            *w = (*w).max(cell.as_ref().chars().count());
        }
    }

    /// The width of a full line, for a rule under the table.
    pub(crate) fn line_width(&self) -> usize {
        self.widths.iter().sum::<usize>() + GAP.len() * self.widths.len().saturating_sub(1)
    }

    /// Appends `cells` as one line, with its newline.
    pub(crate) fn push_line<S: AsRef<str>>(&self, out: &mut String, cells: &[S]) {
        let start = out.len();
        for (c, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            if c > 0 {
                out.push_str(GAP);
            }
            let width = self.widths.get(c).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            if c >= self.right_from {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(start + out[start..].trim_end().len());
        out.push('\n');
    }

    /// A whole table held in memory: measured, then laid out.
    pub(crate) fn render<S: AsRef<str>>(mut self, rows: &[Vec<S>]) -> String {
        for row in rows {
            self.measure(row);
        }
        let mut out = String::new();
        for row in rows {
            self.push_line(&mut out, row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_and_trims_line_ends() {
        let t = Columns::default().render(&[vec!["A", "BB"], vec!["CCC", "D"], vec!["E", ""]]);
        assert_eq!(t, "A    BB\nCCC  D\nE\n");
    }

    #[test]
    fn figures_right_aligned_and_minimum_widths() {
        let t = Columns::at_least(&[0, 4])
            .right_aligned_from(2)
            .render(&[vec!["NAME", "X", "COST"], vec!["é", "Y", "1.5"]]);
        assert_eq!(t, "NAME  X     COST\né     Y      1.5\n");
    }

    #[test]
    fn line_width_counts_the_gaps() {
        let mut c = Columns::default();
        c.measure(&["ab", "c", "déf"]);
        assert_eq!(c.line_width(), 2 + 1 + 3 + 2 * 2);
        assert_eq!(Columns::default().line_width(), 0);
    }
}
