"""The inspector's table: every appeal received in a period, as CSV or XLSX.

CSV is written the way Russian Excel opens it by double click: UTF-8 with a BOM,
';' between fields. XLSX (openpyxl) carries real date-time cells in school time.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ..compose import CATEGORY_NAMES, ROLE_NAMES
from ..domain import Roster
from ..sla.calendar import WorkCalendar
from ..store.models import Appeal, as_aware, to_utc_naive

STATUS_NAMES = {
    "open": "ждёт ответа",
    "waiting": "учитель ждёт ответа ученика",
    "answered": "отвечено",
    "closed": "закрыто",
}

COLUMNS = (
    "№", "Поступило", "Срок ответа", "Ответ", "Закрыто", "Статус", "Категория", "Класс",
    "Предмет", "Ученик", "Отправитель", "Кто писал", "Учитель", "В срок", "Время ответа, раб. ч",
    "Тема письма",
)
TIME_COLUMNS = (1, 2, 3, 4)


@dataclass(frozen=True)
class ReportRow:
    values: tuple  # in COLUMNS order; times as naive school-local datetimes or None


def window_verdict(appeal: Appeal, now: datetime) -> str:
    due, answered = as_aware(appeal.due_at), as_aware(appeal.answered_at)
    if answered is not None:
        if due is None or answered <= due:
            return "в срок"
        return "с опозданием"
    if appeal.status == "closed":
        return "закрыто без ответа"
    if due is not None and due < now:
        return "просрочено"
    return "срок не истёк"


def rows(calendar: WorkCalendar, roster: Roster, first: date, last: date, now: datetime) -> list[ReportRow]:
    """Appeals received from ``first`` to ``last`` (school-local days, both included)."""
    tz = calendar.hours.tz
    lo = datetime.combine(first, time.min, tzinfo=tz)
    hi = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)

    def local(value) -> datetime | None:
        moment = as_aware(value)
        return moment.astimezone(tz).replace(tzinfo=None, microsecond=0) if moment else None

    out = []
    query = (Appeal.select()
             .where((Appeal.received_at >= to_utc_naive(lo)) & (Appeal.received_at < to_utc_naive(hi)))
             .order_by(Appeal.received_at, Appeal.number))
    for a in query:
        received, answered = as_aware(a.received_at), as_aware(a.answered_at)
        hours = round(calendar.working_hours_between(received, answered), 2) if answered else None
        student = ""
        if a.student:
            st = roster.student(a.student)
            student = st.full_name if st else a.student
        sender = roster.name_of(a.sender)
        if sender == a.sender and a.sender_name:
            sender = f"{a.sender_name} <{a.sender}>"
        out.append(ReportRow((
            a.number, local(a.received_at), local(a.due_at), local(a.answered_at), local(a.closed_at),
            STATUS_NAMES.get(a.status, a.status), CATEGORY_NAMES.get(a.category, a.category),
            a.class_name or "", a.subject or "", student, sender,
            ROLE_NAMES.get(a.sender_role, a.sender_role), roster.name_of(a.assignee),
            window_verdict(a, now), hours, a.title or "",
        )))
    return out


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")  # Russian Excel reads a comma as the decimal sign
    return str(value)


def write_csv(path: Path, report: list[ReportRow]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, delimiter=";", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(COLUMNS)
        for row in report:
            writer.writerow([_text(v) for v in row.values])


def write_xlsx(path: Path, report: list[ReportRow], *, title: str = "Обращения") -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in report:
        ws.append(list(row.values))
    for index in TIME_COLUMNS:
        for cell in ws.iter_cols(min_col=index + 1, max_col=index + 1, min_row=2):
            for c in cell:
                c.number_format = "YYYY-MM-DD HH:MM"
    widths = {0: 6, 1: 17, 2: 17, 3: 17, 4: 17, 5: 16, 6: 22, 7: 7, 8: 18, 9: 28, 10: 28, 11: 14,
              12: 28, 13: 16, 14: 10, 15: 40}
    for index, width in widths.items():
        ws.column_dimensions[get_column_letter(index + 1)].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    wb.save(path)
