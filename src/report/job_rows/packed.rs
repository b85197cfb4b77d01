//! A job row packed into bytes, as it waits in the sort ([`super::super::sorted_rows`]):
//! the first thread packs it (its text fields copied, its figures as they are), the
//! sort's thread unpacks it, borrowing the text, and renders it. Packing is a copy;
//! rendering (figures digit by digit, times, quoting) is the work moved to the other core.
//!
//! Layout, little-endian: the nine text fields' lengths as u32 (job id, state, user,
//! group, account, project, partition, instance types, price source), then their bytes
//! one after the other (checked as UTF-8 in one pass when read back: a check per field
//! was a tenth of the sort thread's time); start, end
//! and elapsed seconds as i64; nodes, CPUs, GPUs as u32; one byte of flags (bit 0 to 4:
//! cost, CPU efficiency, walltime accuracy, wasted cost, memory efficiency present; bit 5:
//! a GPU job); the five figures as f64 (0 when absent).

use std::borrow::Cow;
use std::io;

use super::JobRow;
use crate::model::time::Timestamp;

/// The text fields, in their packed order.
fn texts<'r>(row: &'r JobRow<'_>) -> [&'r str; 9] {
    [
        &row.job_id,
        &row.state,
        &row.user,
        &row.group,
        &row.account,
        &row.project,
        &row.partition,
        &row.instance_types,
        &row.price_source,
    ]
}

/// The length of `row` packed.
pub(super) fn size(row: &JobRow<'_>) -> usize {
    texts(row).iter().map(|t| 4 + t.len()).sum::<usize>() + 3 * 8 + 3 * 4 + 1 + 5 * 8
}

/// Appends `row`, packed, to `out` ([`size`] bytes). A field of 4 GiB or more (which no
/// sacct line the reader accepts holds) is packed empty, so the row still reads back.
pub(super) fn pack(row: &JobRow<'_>, out: &mut Vec<u8>) {
    let texts = texts(row).map(|t| if u32::try_from(t.len()).is_ok() { t } else { "" });
    for text in texts {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    }
    for text in texts {
        out.extend_from_slice(text.as_bytes());
    }
    for n in [row.start.as_second(), row.end.as_second(), row.elapsed_seconds] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for n in [row.nodes, row.cpus, row.gpus] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    let figures = [
        row.cost,
        row.cpu_efficiency,
        row.walltime_accuracy,
        row.wasted_cost,
        row.mem_efficiency,
    ];
    let mut flags = u8::from(row.gpu) << 5;
    for (i, f) in figures.iter().enumerate() {
        flags |= u8::from(f.is_some()) << i;
    }
    out.push(flags);
    for f in figures {
        out.extend_from_slice(&f.unwrap_or(0.0).to_le_bytes());
    }
}

/// Reads a packed row, its text borrowed from `bytes`.
pub(super) fn unpack(bytes: &[u8]) -> io::Result<JobRow<'_>> {
    let mut r = Reader(bytes);
    let mut lens = [0usize; 9];
    for len in &mut lens {
        *len = u32::from_le_bytes(r.take()?) as usize;
    }
    // One check for the nine: each was a whole `str`, so their ends are char boundaries.
    let all = std::str::from_utf8(r.bytes(lens.iter().sum())?).map_err(io::Error::other)?;
    let mut texts: [&str; 9] = [""; 9];
    let mut at = 0;
    for (t, len) in texts.iter_mut().zip(lens) {
        *t = all
            .get(at..at + len)
            .ok_or_else(|| io::Error::other("a packed job row's text is cut inside a character"))?;
        at += len;
    }
    let [job_id, state, user, group, account, project, partition, instance_types, price_source] = texts;
    let start = i64::from_le_bytes(r.take()?);
    let end = i64::from_le_bytes(r.take()?);
    let elapsed_seconds = i64::from_le_bytes(r.take()?);
    let nodes = u32::from_le_bytes(r.take()?);
    let cpus = u32::from_le_bytes(r.take()?);
    let gpus = u32::from_le_bytes(r.take()?);
    let [flags] = r.take::<1>()?;
    let mut figures = [None; 5];
    for (i, f) in figures.iter_mut().enumerate() {
        let v = f64::from_le_bytes(r.take()?);
        *f = (flags & (1 << i) != 0).then_some(v);
    }
    let [cost, cpu_efficiency, walltime_accuracy, wasted_cost, mem_efficiency] = figures;
    Ok(JobRow {
        job_id: Cow::Borrowed(job_id),
        state: Cow::Borrowed(state),
        user: Cow::Borrowed(user),
        group: Cow::Borrowed(group),
        account: Cow::Borrowed(account),
        project: Cow::Borrowed(project),
        partition: Cow::Borrowed(partition),
        start: Timestamp::from_second(start),
        end: Timestamp::from_second(end),
        elapsed_seconds,
        nodes,
        cpus,
        gpus,
        instance_types: Cow::Borrowed(instance_types),
        price_source: Cow::Borrowed(price_source),
        cost,
        cpu_efficiency,
        gpu: flags & (1 << 5) != 0,
        walltime_accuracy,
        wasted_cost,
        mem_efficiency,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(io::Error::other("a packed job row is cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_back_as_packed() {
        let row = JobRow {
            job_id: "105+1".into(),
            state: "COMPLETED".into(),
            user: "ctalice".into(),
            group: "".into(),
            account: "physics".into(),
            project: "Projekt \u{e9}\"x,y\"".into(),
            partition: "gpu".into(),
            start: Timestamp::from_second(1_709_251_200),
            end: Timestamp::from_second(-5),
            elapsed_seconds: 3600,
            nodes: 1,
            cpus: u32::MAX,
            gpus: 2,
            instance_types: "g4dn.2xlarge+c5.xlarge".into(),
            price_source: "on demand (settings)".into(),
            cost: Some(0.9),
            cpu_efficiency: None,
            gpu: true,
            walltime_accuracy: Some(-0.0),
            wasted_cost: None,
            mem_efficiency: Some(1.25),
        };
        let mut bytes = vec![7];
        pack(&row, &mut bytes);
        assert_eq!(bytes.len(), 1 + size(&row));
        let back = unpack(&bytes[1..]).unwrap();
        assert_eq!(format!("{back:?}"), format!("{row:?}"));
        assert!(unpack(&bytes[1..bytes.len() - 1]).is_err());
    }
}
