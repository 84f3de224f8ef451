"""TRL's implicit-prompt pairs (no `prompt` column): the prompt is what chosen and rejected share,
cut back to a word boundary; every split below is worked out by hand."""

from __future__ import annotations

import json

import pytest

from prefalign.data import DataError, load_records

HH_CHOSEN = "\n\nHuman: hi\n\nAssistant: hello there"
HH_REJECTED = "\n\nHuman: hi\n\nAssistant: go away"


def split(chosen, rejected):
    (record,), _ = load_records([{"chosen": chosen, "rejected": rejected}])
    return record.prompt, record.chosen, record.rejected


def test_anthropic_hh_row_splits_as_trl_does():
    # common prefix "...Assistant: " ends with a space, which goes to the responses (TRL's rule)
    assert split(HH_CHOSEN, HH_REJECTED) == (
        "\n\nHuman: hi\n\nAssistant:", " hello there", " go away")


def test_a_prefix_ending_mid_word_is_cut_back_to_the_word_boundary():
    # common prefix "...Assistant: The ca"; TRL would give "...The ca" + "t sleeps." / "r"
    chosen = "\n\nHuman: Name a pet.\n\nAssistant: The cat sleeps."
    rejected = "\n\nHuman: Name a pet.\n\nAssistant: The car"
    assert split(chosen, rejected) == (
        "\n\nHuman: Name a pet.\n\nAssistant: The", " cat sleeps.", " car")
    # a divergence at punctuation is inside a word too: "Yes" goes back to the responses
    assert split("Q: Yes.", "Q: Yes!") == ("Q:", " Yes.", " Yes!")


def test_a_newline_before_the_split_stays_in_the_prompt():
    assert split("Q:\nyes", "Q:\nno way") == ("Q:\n", "yes", "no way")


def test_multi_turn_hh_row_keeps_every_shared_turn_in_the_prompt():
    history = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"
    assert split(history + " d", history + " e f") == (history, " d", " e f")


def test_conversational_implicit_prompt_is_the_shared_leading_messages():
    user, first = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}
    again = {"role": "user", "content": "Name a pet."}
    cat, car = ({"role": "assistant", "content": t} for t in ("A cat.", "A car, and a dog."))
    prompt, chosen, rejected = split([user, first, again, cat], [user, first, again, car])
    assert (prompt, chosen, rejected) == ([user, first, again], [cat], [car])


@pytest.mark.parametrize("chosen,rejected,field,problem,reason", [
    ("Paris.", "Rome.", "prompt", "missing, and chosen/rejected share no leading words",
     "no_shared_prompt"),
    ("cat", "car", "prompt", "missing, and chosen/rejected share no leading words",
     "no_shared_prompt"),  # "ca" is shared but has no word boundary to cut back to
    ("   x", "   y", "prompt", "missing, and chosen/rejected share no leading words",
     "no_shared_prompt"),  # only whitespace is shared
    ("Q: yes", "Q: yes, sure", "chosen", "is the start of 'rejected'", "empty_response"),
    ("Q: yes, sure", "Q: yes", "rejected", "is the start of 'chosen'", "empty_response"),
    ("Q: yes", "Q: yes", "rejected", "identical to 'chosen'", "identical_responses"),
    ([{"role": "user", "content": "x"}],
     [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
     "chosen", "is the start of 'rejected'", "empty_response"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
     [{"role": "user", "content": "z"}, {"role": "assistant", "content": "y"}],
     "prompt", "missing, and chosen/rejected share no leading turns", "no_shared_prompt"),
    ("Q: yes", [{"role": "assistant", "content": "no"}], "rejected",
     "is a message list but 'chosen' is a plain string", "wrong_type"),
])
def test_unusable_implicit_rows_name_file_line_and_field(tmp_path, chosen, rejected, field,
                                                         problem, reason):
    path = tmp_path / "hh.jsonl"
    rows = [{"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, {"chosen": chosen, "rejected": rejected}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as err:
        load_records(path)
    assert str(err.value).startswith(f"{path}, line 2, field '{field}': {problem}")
    assert err.value.reason == reason
    records, report = load_records(path, on_error="skip")
    assert len(records) == 1 and report.skipped == {reason: 1}


def test_a_prompt_column_is_used_as_given():
    (record,), _ = load_records([{"prompt": "Q:", "chosen": " The cat", "rejected": " The car"}])
    assert (record.prompt, record.chosen, record.rejected) == ("Q:", " The cat", " The car")
