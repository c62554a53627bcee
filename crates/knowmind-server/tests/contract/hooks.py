"""Schemathesis hooks for knowmind's contract test (tests/it/contract.rs).

The run must keep its credential: a call naming the caller's own token (its id can reach a path
through links from a listing) is sent for a token that does not exist instead. Operations on the
presented token itself (`/v1/tokens/self/revoke`, `/v1/tokens/self/rotate`) are excluded on the
command line.
"""

import os

import schemathesis

PROTECTED = {i for i in os.environ.get("KNOWMIND_PROTECTED_IDS", "").split(",") if i}
ABSENT = "0000000000000000"


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and params.get("id") in PROTECTED:
        params["id"] = ABSENT
