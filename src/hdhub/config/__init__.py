"""Settings, store URLs and secret loading."""

from hdhub.config.keys import Keys, generate_secrets, load_keys
from hdhub.config.settings import Settings, load_settings, write_default_config

__all__ = ["Keys", "Settings", "generate_secrets", "load_keys", "load_settings", "write_default_config"]
