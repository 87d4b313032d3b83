"""The command safety policy of the DTMA agent.

engine.py is a symlink to plugins/module_utils/_policy.py, and each _policy_*.py here is a symlink to the
file of the same name there: one set of files serves the agent and the Ansible modules, so the policy the
modules check in advance is, by construction, the policy the agent enforces.
"""

from .engine import (
    BASHLEX_IMPORT_ERROR,
    DEFAULT_POLICY,
    HAS_BASHLEX,
    POLICY_SCHEMA,
    Policy,
    PolicyContext,
    PolicyError,
    Verdict,
    default_policy,
    dump_default_policy,
    load_policy,
)

__all__ = [
    "BASHLEX_IMPORT_ERROR",
    "DEFAULT_POLICY",
    "HAS_BASHLEX",
    "POLICY_SCHEMA",
    "Policy",
    "PolicyContext",
    "PolicyError",
    "Verdict",
    "default_policy",
    "dump_default_policy",
    "load_policy",
]
