"""A patron's barcode is masked before anything is written: NCIP ProblemValues that name a user, and any text
of a step run that repeats a barcode the run has seen."""

from __future__ import annotations

from illbridge.errors import WmsProblem
from illbridge.observability import mask, redact
from illbridge.workflow.engine import describe_error

BARCODE = "EAST-P-0001-7731"


def test_a_problem_value_naming_a_user_is_masked_and_an_item_barcode_is_kept() -> None:
    # Given WMS's answers to AcceptItem and CheckOutItem for an unknown patron (ProblemElement: the user's id)
    for element in ("UserIdentifierValue", "AuthenticationInputData", None):
        problem = WmsProblem(
            "Unknown User", f"no user {BARCODE}", element=element, value=BARCODE, operation="AcceptItem"
        )
        # When it is described for the history
        described = describe_error(problem)
        # Then the value and the message show only the last four characters
        assert described["problem_value"] == mask(BARCODE) == "************7731"
        assert BARCODE not in str(described["message"]), element
    # Given a problem about an item, When described, Then its value (not personal) is kept for staff
    item = WmsProblem("Unknown Item", element="ItemIdentifierValue", value="WEST-ITEM-0001")
    assert describe_error(item)["problem_value"] == "WEST-ITEM-0001"


def test_redact_masks_every_occurrence_in_nested_values() -> None:
    line = {"summary": f"patron {BARCODE} blocked", "response": {"detail": [f"User {BARCODE}"], "n": 3}}
    assert redact(line, [BARCODE]) == {
        "summary": "patron ************7731 blocked",
        "response": {"detail": ["User ************7731"], "n": 3},
    }
    assert redact("nothing private", []) == "nothing private"
