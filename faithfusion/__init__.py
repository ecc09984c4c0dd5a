"""FaithFusion: faithful novel-view synthesis of driving scenes."""
__version__ = "0.1.0"
