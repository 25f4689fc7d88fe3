"""Pure audio DSP for the edge: μ-law codec, resampling, framing and voice activity."""
