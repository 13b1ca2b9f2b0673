"""The reminder and escalation ladder through the real mail stack, with a controllable clock.

Letters arrive now (the real clock); the sweep is told what time it is with
``helpdesk sla sweep --now``, at the moments ``helpdesk sla pending`` lists.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from helpdesk.cli import main
from tests.test_e2e import ALGEBRA_TEACHER, STUDENT, cli_json, letter, parse, run_once, teacher_reply, text_of
from tests.conftest import SCHOOL

pytestmark = pytest.mark.mailstack

DEPUTY = "n.kovalevskaya@lyceum21-edu.test"
DIRECTOR = "o.grigoriev@lyceum21-edu.test"


def sweep_at(config, moment: str, capsys) -> dict:
    capsys.readouterr()
    assert main(["--config", str(config), "sla", "sweep", "--now", moment, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def send_out(config) -> None:
    assert main(["--config", str(config), "run", "--once", "--only", "outbox"]) == 0


def later(moment: str, **delta) -> str:
    return (datetime.fromisoformat(moment) + timedelta(**delta)).isoformat()


def new_appeal(config, stack, capsys, body: str) -> tuple[dict, list[dict]]:
    stack.send(letter(STUDENT, "алгебра", body), STUDENT, [SCHOOL])
    run_once(config)
    [appeal] = [a for a in cli_json(config, "appeals", "list", capsys=capsys) if a["status"] == "open"]
    steps = [s for s in cli_json(config, "sla", "pending", capsys=capsys) if s["appeal"] == appeal["number"]]
    assert [s["kind"] for s in steps] == ["reminder", "escalation", "escalation"]
    return appeal, steps


def test_reminder_breach_and_second_level(helpdesk_config, stack, capsys):
    appeal, (reminder, breach, second) = new_appeal(
        helpdesk_config, stack, capsys, "не понимаю квадратные уравнения. лев кузьмин 7в")
    number = appeal["number"]
    assert breach["due_at"] == appeal["due_at"]
    stack.wait_for(ALGEBRA_TEACHER, 1)  # the appeal itself

    # Nothing before its time.
    assert sweep_at(helpdesk_config, later(reminder["due_at"], seconds=-1), capsys)["fired"] == []

    # 75% of the window: a reminder to the teacher.
    fired = sweep_at(helpdesk_config, reminder["due_at"], capsys)
    assert fired["fired"] == [{"appeal": number, "level": 0, "kind": "reminder"}]
    send_out(helpdesk_config)
    note = parse(stack.wait_for(ALGEBRA_TEACHER, 2)[1])
    assert note["Subject"].startswith(f"Напоминание: срок ответа на обращение № {number} — ")
    assert "скоро истекает срок ответа" in text_of(note)
    assert note["From"].addresses[0].addr_spec == SCHOOL

    # The deadline passes: the deputy, with a copy to the teacher.
    assert [f["level"] for f in sweep_at(helpdesk_config, breach["due_at"], capsys)["fired"]] == [1]
    send_out(helpdesk_config)
    to_deputy = parse(stack.wait_for(DEPUTY, 1)[0])
    assert to_deputy["Subject"] == f"Просрочено обращение № {number} (7В, алгебра)"
    body = text_of(to_deputy)
    assert "Кузьмин Лев" in body and "Карпенко Дмитрий Анатольевич" in body
    copy = parse(stack.wait_for(ALGEBRA_TEACHER, 3)[2])
    assert "Истёк срок ответа на обращение, назначенное вам" in text_of(copy)
    assert "Ковалевская Нина Аркадьевна (заместитель директора)" in text_of(copy)

    # A restart and the same moment again: nothing twice.
    assert sweep_at(helpdesk_config, breach["due_at"], capsys)["letters"] == []

    # One more working day: the director.
    late = sweep_at(helpdesk_config, later(second["due_at"], minutes=30), capsys)
    assert [f["level"] for f in late["fired"]] == [2]
    send_out(helpdesk_config)
    to_director = parse(stack.wait_for(DIRECTOR, 1)[0])
    assert f"№ {number}" in to_director["Subject"]
    assert "рабочего времени" in text_of(to_director)
    assert len(stack.wait_for(DEPUTY, 2)) == 2 and len(stack.wait_for(ALGEBRA_TEACHER, 4)) == 4

    assert sweep_at(helpdesk_config, later(second["due_at"], days=10), capsys)["letters"] == []
    send_out(helpdesk_config)
    assert (len(stack.messages(DIRECTOR)), len(stack.messages(DEPUTY)),
            len(stack.messages(ALGEBRA_TEACHER))) == (1, 2, 4)


def test_teacher_reply_cancels_the_rest(helpdesk_config, stack, capsys):
    appeal, (reminder, breach, second) = new_appeal(
        helpdesk_config, stack, capsys, "как решить x^2-5x+6=0? лев 7в")
    to_teacher = parse(stack.wait_for(ALGEBRA_TEACHER, 1)[0])
    sweep_at(helpdesk_config, reminder["due_at"], capsys)
    send_out(helpdesk_config)
    assert len(stack.wait_for(ALGEBRA_TEACHER, 2)) == 2

    stack.send(teacher_reply(to_teacher, ALGEBRA_TEACHER, "Лев, корни 2 и 3: проверь по теореме Виета."),
               ALGEBRA_TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert "теореме Виета" in text_of(parse(stack.wait_for(STUDENT, 2)[1]))

    # The reply cancelled the remaining steps at once (in the pipeline's transaction),
    # so the sweep at the deadline finds nothing to fire or cancel.
    result = sweep_at(helpdesk_config, breach["due_at"], capsys)
    assert result["fired"] == [] and result["cancelled"] == 0
    assert sweep_at(helpdesk_config, later(second["due_at"], hours=1), capsys)["fired"] == []
    send_out(helpdesk_config)
    assert stack.messages(DEPUTY) == [] and stack.messages(DIRECTOR) == []
    assert len(stack.messages(ALGEBRA_TEACHER)) == 2
    shown = cli_json(helpdesk_config, "appeals", "show", str(appeal["number"]), capsys=capsys)[0]
    kinds = [e["kind"] for e in shown["events"]]
    assert "sla_reminder" in kinds and "sla_cancelled" in kinds and "sla_escalation" not in kinds


def test_a_reply_to_a_reminder_is_not_a_new_appeal(helpdesk_config, stack, capsys):
    appeal, (reminder, _breach, _second) = new_appeal(
        helpdesk_config, stack, capsys, "как решить x^2-5x+6=0? лев 7в")
    sweep_at(helpdesk_config, reminder["due_at"], capsys)
    send_out(helpdesk_config)
    notice = parse(stack.wait_for(ALGEBRA_TEACHER, 2)[1])
    answer = letter(ALGEBRA_TEACHER, "Re: " + notice["Subject"], "Я болею, ответить не смогу.",
                    In_Reply_To=notice["Message-ID"], References=notice["Message-ID"])
    stack.send(answer, ALGEBRA_TEACHER, [SCHOOL])
    run_once(helpdesk_config)
    assert len(cli_json(helpdesk_config, "appeals", "list", capsys=capsys)) == 1
    hint = parse(stack.wait_for(ALGEBRA_TEACHER, 3)[2])
    assert "Как ответить ученику" in hint["Subject"]
    assert len(stack.messages(STUDENT)) == 1  # only the acknowledgement
