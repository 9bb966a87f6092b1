//! Rows of batched tensors, whose first dimension counts rows: stacking, padding and taking
//! rows back out. Dynamic batching stacks concurrent calls into one run and splits its outputs
//! ([`super::batch`]); explanations stack perturbed copies of an input (`trust::explain`).
//! Both go through these, so the byte arithmetic of a row is written once.

use std::ops::Range;

use super::RawTensor;

impl RawTensor {
    /// Bytes of one row: `data.len() / shape[0]`; `None` for a scalar or a tensor without rows.
    pub fn row_bytes(&self) -> Option<usize> {
        let rows = *self.shape.first()?;
        (rows > 0).then(|| self.data.len() / rows)
    }

    /// A tensor of `rows` rows shaped like this one past the first dimension, its bytes
    /// `parts` one after the other (each a whole number of this tensor's rows).
    pub fn stacked<'a>(&self, rows: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> RawTensor {
        let mut shape = self.shape.clone();
        shape[0] = rows;
        let mut data = Vec::with_capacity(self.row_bytes().unwrap_or(0) * rows);
        for part in parts {
            data.extend_from_slice(part);
        }
        RawTensor { name: self.name.clone(), datatype: self.datatype, shape, data }
    }

    /// Grows to `rows` rows by repeating the last one (padding a batch up to a planned size:
    /// a real row keeps the padding's numbers ordinary, and its outputs are dropped).
    pub fn pad_rows(&mut self, rows: usize) {
        let (Some(row), Some(&have)) = (self.row_bytes(), self.shape.first()) else { return };
        if rows <= have || row == 0 {
            return;
        }
        let last = self.data[self.data.len() - row..].to_vec();
        for _ in have..rows {
            self.data.extend_from_slice(&last);
        }
        self.shape[0] = rows;
    }

    /// Rows `range` as a tensor of their own.
    pub fn rows(&self, range: Range<usize>) -> RawTensor {
        let row = self.row_bytes().unwrap_or(0);
        let mut shape = self.shape.clone();
        shape[0] = range.len();
        let data = self.data[range.start * row..range.end * row].to_vec();
        RawTensor { name: self.name.clone(), datatype: self.datatype, shape, data }
    }
}

#[cfg(test)]
mod tests {
    use crate::inference::testing::f32_tensor;

    #[test]
    fn rows_stack_pad_and_split() {
        let a = f32_tensor("x", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let b = f32_tensor("x", &[1, 2], &[5.0, 6.0]);
        let mut stacked = a.stacked(3, [&a.data[..], &b.data[..]]);
        assert_eq!((stacked.shape.clone(), stacked.row_bytes()), (vec![3, 2], Some(8)));
        assert_eq!(stacked.rows(2..3), b);
        assert_eq!(stacked.rows(0..2), a);
        stacked.pad_rows(4);
        assert_eq!(stacked.rows(3..4).data, b.data, "padding repeats the last row");
        assert_eq!(stacked.shape, vec![4, 2]);
    }
}
