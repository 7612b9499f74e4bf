"""The agent registry: one line per agent, ``name: (agent class, config class)``.

Every agent module defines a frozen config dataclass and a ``flax.struct.PyTreeNode`` agent with ``create``,
``total_loss``, ``update`` and ``sample_actions``; value-based agents add ``value`` (and ``q_value``). A config is
flat: it inherits the shared fields (:mod:`scalerl.agents.config`) and the goal-sampling field groups of
:mod:`scalerl.sampling` it uses, with the agent's defaults, and adds its own hyper-parameters. Adding an agent is one
entry in :data:`AGENTS`.
"""

from __future__ import annotations

import dataclasses

from scalerl.agents.crl import CRLAgent, CRLConfig
from scalerl.agents.dsharsa import DSHARSAAgent, DSHARSAConfig
from scalerl.agents.fbc import FBCAgent, FBCConfig
from scalerl.agents.fql import FQLAgent, FQLConfig
from scalerl.agents.gcbc import GCBCAgent, GCBCConfig
from scalerl.agents.gciql import GCIQLAgent, GCIQLConfig
from scalerl.agents.gcivl import GCIVLAgent, GCIVLConfig
from scalerl.agents.hfbc import HFBCAgent, HFBCConfig
from scalerl.agents.hiql import HIQLAgent, HIQLConfig
from scalerl.agents.nsacbc import NSACBCAgent, NSACBCConfig
from scalerl.agents.qrl import QRLAgent, QRLConfig
from scalerl.agents.rsharsa import RSHARSAAgent, RSHARSAConfig
from scalerl.agents.sacbc import SACBCAgent, SACBCConfig
from scalerl.agents.sharsa import SHARSAAgent, SHARSAConfig
from scalerl.errors import ScalerlError
from scalerl.sampling import GoalSamplerConfig

AGENTS: dict[str, tuple[type, type]] = {
    "fbc": (FBCAgent, FBCConfig),
    "gciql": (GCIQLAgent, GCIQLConfig),
    "gcbc": (GCBCAgent, GCBCConfig),
    "gcivl": (GCIVLAgent, GCIVLConfig),
    "crl": (CRLAgent, CRLConfig),
    "sacbc": (SACBCAgent, SACBCConfig),
    "fql": (FQLAgent, FQLConfig),
    "qrl": (QRLAgent, QRLConfig),
    "sharsa": (SHARSAAgent, SHARSAConfig),
    "nsacbc": (NSACBCAgent, NSACBCConfig),
    "hfbc": (HFBCAgent, HFBCConfig),
    "hiql": (HIQLAgent, HIQLConfig),
    "dsharsa": (DSHARSAAgent, DSHARSAConfig),
    "rsharsa": (RSHARSAAgent, RSHARSAConfig),
}


def get_agent(name: str) -> tuple[type, type]:
    """``(agent class, config class)`` of a registered agent; unknown names raise a one-line ScalerlError."""
    if name not in AGENTS:
        raise ScalerlError(f"--agent: unknown agent '{name}'; expected one of {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


def sampler_config(agent_config) -> GoalSamplerConfig:
    """The sampler configuration of an agent: the values of the goal-sampling fields its config inherits.

    The field groups a config does not inherit (e.g. ``subgoal_steps`` for a flat agent) keep the sampler's defaults.
    """
    names = {field.name for field in dataclasses.fields(agent_config)}
    return GoalSamplerConfig(
        **{
            field.name: getattr(agent_config, field.name)
            for field in dataclasses.fields(GoalSamplerConfig)
            if field.name in names
        }
    )
