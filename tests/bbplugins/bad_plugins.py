"""Plug-ins that cannot be used as given: each must be refused with one line and exit 2."""

from __future__ import annotations

import dataclasses

import bilevelbench.algorithms as al

_AID = al.get("aid-bio")

#: an algorithm that does not say which role it fills
NO_ROLES = dataclasses.replace(_AID, name="bad-no-roles", presets={}, roles=())
#: a role no experiment knows
UNKNOWN_ROLE = dataclasses.replace(_AID, name="bad-unknown-role", presets={}, roles=("aid-bi0",))
#: a seed algorithm's name taken
SEED_NAME = dataclasses.replace(_AID, name="itd-bio", presets={}, roles=("aid-bio",))
#: AID-BiO without the parameter warm_v that the paper's presets set
MISSING_PARAM = dataclasses.replace(_AID, name="bad-missing-param", presets={}, roles=("aid-bio",),
                                    params={k: v for k, v in _AID.params.items() if k != "warm_v"})
#: two plug-ins for one role (with TWIN_AID_BIO of twins)
SECOND_AID = dataclasses.replace(_AID, name="bad-second-aid", presets={}, roles=("aid-bio",))
#: not a plug-in at all
NOT_A_PLUGIN = 42


def _crash(ctx, state, k):
    raise RuntimeError("the plug-in's step crashed")


#: a plug-in whose step raises: its claims end in ``error`` (exit 3), never a quiet inconclusive
CRASHING_ITD = dataclasses.replace(al.get("itd-bio"), name="bad-crashing-itd", presets={}, roles=("itd-bio",),
                                   step=_crash)
