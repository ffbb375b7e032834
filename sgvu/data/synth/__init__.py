"""SynthSketch: a procedural world of sketches, photos, captions and scenes."""

from sgvu.data.synth.catalog import ALL_CATEGORIES, SEEN_CATEGORIES, UNSEEN_CATEGORIES
from sgvu.data.synth.world import PROTOCOLS, SynthSketch

__all__ = ["ALL_CATEGORIES", "PROTOCOLS", "SEEN_CATEGORIES", "SynthSketch", "UNSEEN_CATEGORIES"]
