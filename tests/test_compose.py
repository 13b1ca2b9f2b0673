"""Subjects of outgoing letters: prefixes never pile up, the appeal tag always survives."""
from __future__ import annotations

import pytest

from helpdesk.compose import reply_subject, short_title, tag_number


@pytest.mark.parametrize("title", [
    "алгебра", "Re: алгебра", "RE[2]: алгебра", "Ответ: Re: алгебра", "Отв: алгебра",
    "Fwd: алгебра", "Пересл.: алгебра", "FW: RE: Re^3: алгебра", "Re: алгебра [№ 7]",
    "[№ 7] Re: алгебра",
])
def test_prefixes_and_tags_do_not_pile_up(title):
    assert reply_subject(title, 7) == "Re: алгебра [№ 7]"


def test_a_long_subject_keeps_its_tag():
    subject = reply_subject("очень " * 200 + "длинная тема", 12)
    assert len(subject) < 180 and subject.endswith("[№ 12]") and tag_number(subject) == 12
    assert short_title("короткая") == "короткая"


def test_empty_subject_gets_a_title():
    assert reply_subject("", 3) == "Re: Ваше обращение [№ 3]"
