//! A tensor is a storage buffer of f32 (or u32) elements and a row-major shape.

#[derive(Debug, Clone)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
}

impl Tensor {
    pub fn new(buffer: wgpu::Buffer, shape: Vec<usize>) -> Tensor {
        Tensor { buffer, shape }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same buffer seen with another shape of the same or fewer elements (used when an
    /// activation buffer is reused for a smaller tensor).
    pub fn view(&self, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        assert!(
            (len * 4) as u64 <= self.buffer.size(),
            "view {shape:?} does not fit the buffer of {:?}",
            self.shape
        );
        Tensor::new(self.buffer.clone(), shape.to_vec())
    }

    /// The last dimension, e.g. channels of an [N, P, C] activation.
    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// The product of all but the last dimension.
    pub fn rows(&self) -> usize {
        self.len() / self.cols().max(1)
    }
}
