"""extract_reply on replies written the way common mail clients write them.

Each sample follows a client's known reply layout: its quote header line, its
quote markup (">" in text/plain; blockquote / div classes in HTML) and its
signature or mobile footer.
"""
from __future__ import annotations

import pytest

from helpdesk.understand.html import html_to_text, strip_html_quotes
from helpdesk.understand.replytext import extract_reply

ANSWER = "Милана, добрый день!\nПриглашение в чат класса отправила ещё раз, проверь, пожалуйста."
QUOTED = (
    "> здравствуйте я не могу войти в сферум, пишет что у меня нет приглашения\n"
    "> милана одинцова 8б"
)
UNPREFIXED_ORIGINAL = (
    "здравствуйте я не могу войти в сферум, пишет что у меня нет приглашения\n"
    "милана одинцова 8б"
)

PLAIN = [
    (
        "gmail-ru",
        f"{ANSWER}\n\nпт, 27 нояб. 2026 г. в 10:00, Милана Одинцова <milana.odintsova@bk.test>:\n\n{QUOTED}\n",
    ),
    (
        "gmail-ru-wrapped-header",
        f"{ANSWER}\n\nпт, 27 нояб. 2026 г. в 10:00, Милана Александровна Одинцова <\n"
        f"milana.odintsova@bk.test>:\n\n{QUOTED}\n",
    ),
    (
        "gmail-en",
        f"{ANSWER}\n\nOn Fri, Nov 27, 2026 at 10:00\u202fAM Milana Odintsova <milana.odintsova@bk.test> wrote:\n\n{QUOTED}\n",
    ),
    (
        "gmail-en-wrapped-header",
        f"{ANSWER}\n\nOn Fri, Nov 27, 2026 at 10:00 AM Milana Odintsova <milana.odintsova@bk.test>\n"
        f"wrote:\n\n{QUOTED}\n",
    ),
    (
        "yandex",
        f'{ANSWER}\n\n27.11.2026, 10:00, "Милана Одинцова" <milana.odintsova@bk.test>:\n{QUOTED}\n',
    ),
    (
        "mailru",
        f"{ANSWER}\n\n\nПятница, 27 ноября 2026, 10:00 +03:00 от Милана Одинцова <milana.odintsova@bk.test>:\n\n{QUOTED}\n",
    ),
    (
        "outlook-ru",
        f"{ANSWER}\n\n-----Исходное сообщение-----\nОт: Милана Одинцова <milana.odintsova@bk.test>\n"
        "Отправлено: пятница, 27 ноября 2026 г. 10:00\nКому: lyceum21@lyceum21-edu.test\n"
        f"Тема: не могу войти в сферум\n\n{UNPREFIXED_ORIGINAL}\n",
    ),
    (
        "outlook-en",
        f"{ANSWER}\r\n\r\n-----Original Message-----\r\nFrom: Milana Odintsova <milana.odintsova@bk.test>\r\n"
        "Sent: Friday, November 27, 2026 10:00 AM\r\nTo: lyceum21@lyceum21-edu.test\r\n"
        f"Subject: sferum\r\n\r\n{UNPREFIXED_ORIGINAL}\r\n",
    ),
    (
        "outlook-web-block",
        f"{ANSWER}\n\n________________________________\nОт: Милана Одинцова <milana.odintsova@bk.test>\n"
        "Отправлено: 27 ноября 2026 г. 10:00\nКому: Лицей 21\nТема: не могу войти в сферум\n\n"
        f"{UNPREFIXED_ORIGINAL}\n",
    ),
    (
        "thunderbird-ru",
        f"{ANSWER}\n\n27.11.2026 10:00, Милана Одинцова пишет:\n{QUOTED}\n",
    ),
    (
        "apple-mail-ru",
        f"{ANSWER}\n\n> 27 нояб. 2026 г., в 10:00, Милана Одинцова <milana.odintsova@bk.test> написал(а):\n>\n{QUOTED}\n",
    ),
    (
        "outlook-com-ru",
        f"{ANSWER}\n\nМилана Одинцова <milana.odintsova@bk.test> писал(а):\n{QUOTED}\n",
    ),
    ("quoted-tail-without-header", f"{ANSWER}\n\n{QUOTED}\n\n"),
    (
        "bottom-posting",
        f"27.11.2026, 10:00, \"Милана Одинцова\" <milana.odintsova@bk.test>:\n{QUOTED}\n\n{ANSWER}\n",
    ),
    (
        "signature-delimiter",
        f"{ANSWER}\n-- \nМария Петровна Иванова\nучитель информатики\n\n"
        f"пт, 27 нояб. 2026 г. в 10:00, Милана <milana.odintsova@bk.test>:\n{QUOTED}\n",
    ),
    (
        "signature-regards",
        f"{ANSWER}\n\nС уважением,\nМ. П. Иванова,\nучитель информатики МАОУ «Лицей №21»\n"
        "тел. +7 (000) 000-00-00\n",
    ),
    ("signature-regards-one-line", f"{ANSWER}\nС уважением, Мария Петровна\n"),
    ("iphone-ru", f"{ANSWER}\n\nОтправлено с iPhone\n\n> 27 нояб. 2026 г., в 10:00, Милана <m@bk.test> написал(а):\n{QUOTED}"),
    (
        "mailru-mobile",
        f"{ANSWER}\n\n--\nОтправлено из мобильной Почты Mail.ru\n\n"
        f"Пятница, 27 ноября 2026, 10:00 +03:00 от Милана <milana.odintsova@bk.test>:\n{QUOTED}\n",
    ),
    ("mailru-android", f"{ANSWER}\n\nОтправлено из Mail.ru для Android\n"),
    ("iphone-en", f"{ANSWER}\n\nSent from my iPhone\n\nOn Nov 27, 2026, at 10:00, Milana <m@bk.test> wrote:\n\n{QUOTED}"),
    ("best-regards", f"{ANSWER}\n\nBest regards,\nMaria Ivanova\n"),
]


@pytest.mark.parametrize("text", [t for _, t in PLAIN], ids=[n for n, _ in PLAIN])
def test_plain_replies(text):
    assert extract_reply(text) == ANSWER


def test_inline_answers_are_kept_whole():
    text = (
        "27.11.2026 10:00, Милана Одинцова пишет:\n"
        "> Когда консультация по алгебре?\n"
        "В среду в 15:00, ссылка будет в Сферуме.\n"
        "\n"
        "> И можно ли сдать работу позже?\n"
        "Можно до пятницы.\n"
    )
    assert extract_reply(text) == text.strip()


def test_inline_answers_after_a_greeting_are_kept_whole():
    text = (
        "Милана, ответы ниже.\n\n"
        "> Когда консультация?\n"
        "В среду.\n"
        "-- \nМ. П. Иванова"
    )
    assert extract_reply(text) == text.strip()


def test_nothing_new_gives_nothing():
    # A reply of only a quote and a signature (say, a file sent with an empty body) has
    # no words for the student: the quote and the signature must never reach them.
    assert extract_reply("\n> только цитата\n> и ничего больше\n") == ""
    assert extract_reply("  С уважением, Мария Петровна\nтел. +7 912 000-00-00  \n") == ""
    assert extract_reply("") == ""


@pytest.mark.parametrize(
    "text",
    [
        # "пишет:" / "написал:" in ordinary text: no time, no address, not a quote header
        "Ваня мне написал:\nзадание 5 не задано. Это так?",
        "Учительница пишет: сдать до пятницы.",
        # a sentence that starts like a mobile footer, early in a long answer
        "Отправлено из школы сегодня утром.\n" + "\n".join(f"Строка {i}." for i in range(12)),
    ],
)
def test_ordinary_text_is_not_cut(text):
    assert extract_reply(text) == text


# --------------------------------------------------------------------------- #
# HTML
# --------------------------------------------------------------------------- #

HTML_ANSWER = (
    '<div dir="ltr">Милана, добрый день!<div>Приглашение в чат класса отправила ещё раз, '
    "проверь, пожалуйста.</div></div>"
)
HTML_ORIGINAL = "<div>здравствуйте я не могу войти в сферум</div><div>милана одинцова 8б</div>"

HTML = [
    (
        "gmail",
        f'{HTML_ANSWER}<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        "пт, 27 нояб. 2026 г. в 10:00, Милана Одинцова &lt;"
        '<a href="mailto:milana.odintsova@bk.test">milana.odintsova@bk.test</a>&gt;:<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
        f'rgb(204,204,204);padding-left:1ex">{HTML_ORIGINAL}</blockquote></div>',
    ),
    (
        "gmail-with-signature",
        f'{HTML_ANSWER}<br><span class="gmail_signature_prefix">-- </span><br>'
        '<div dir="ltr" class="gmail_signature"><div>Мария Петровна Иванова</div></div><br>'
        '<div class="gmail_quote"><div class="gmail_attr">On Fri, Nov 27, 2026 at 10:00 AM '
        f"Milana &lt;m@bk.test&gt; wrote:<br></div><blockquote class=\"gmail_quote\">{HTML_ORIGINAL}"
        "</blockquote></div>",
    ),
    (
        "thunderbird",
        f'<html><head><meta http-equiv="content-type" content="text/html; charset=UTF-8"></head>'
        f"<body><p>Милана, добрый день!<br>Приглашение в чат класса отправила ещё раз, проверь, "
        'пожалуйста.</p><div class="moz-cite-prefix">27.11.2026 10:00, Милана Одинцова пишет:<br>'
        f'</div><blockquote type="cite" cite="mid:1@bk.test">{HTML_ORIGINAL}</blockquote></body></html>',
    ),
    (
        "thunderbird-bottom-posting",
        '<body><div class="moz-cite-prefix">27.11.2026 10:00, Милана Одинцова пишет:<br></div>'
        f'<blockquote type="cite">{HTML_ORIGINAL}</blockquote><p>Милана, добрый день!<br>'
        "Приглашение в чат класса отправила ещё раз, проверь, пожалуйста.</p></body>",
    ),
    (
        "apple-mail",
        f"{HTML_ANSWER}<div><br><blockquote type=\"cite\"><div>27 нояб. 2026 г., в 10:00, Милана "
        "&lt;m@bk.test&gt; написал(а):</div><br class=\"Apple-interchange-newline\">"
        f"{HTML_ORIGINAL}</blockquote></div>",
    ),
    (
        "outlook-web",
        f'<div style="font-family:Calibri">{HTML_ANSWER}</div><div id="appendonsend"></div>'
        '<hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">'
        "<font face=\"Calibri\"><b>От:</b> Милана Одинцова &lt;milana.odintsova@bk.test&gt;<br>"
        "<b>Отправлено:</b> 27 ноября 2026 г. 10:00<br><b>Кому:</b> Лицей 21<br>"
        f"<b>Тема:</b> не могу войти</font><div>&nbsp;</div></div>{HTML_ORIGINAL}",
    ),
    (
        "outlook-desktop",
        '<div class="WordSection1"><p class="MsoNormal">Милана, добрый день!<o:p></o:p></p>'
        '<p class="MsoNormal">Приглашение в чат класса отправила ещё раз, проверь, пожалуйста.'
        '<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p><div><div style="border:none;'
        'border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> '
        "Milana &lt;m@bk.test&gt;<br><b>Sent:</b> Friday, November 27, 2026 10:00 AM<br><b>To:</b> "
        f"School<br><b>Subject:</b> sferum</p></div></div>{HTML_ORIGINAL}</div>",
    ),
    (
        "yandex",
        "<div>Милана, добрый день!</div><div>Приглашение в чат класса отправила ещё раз, проверь, "
        "пожалуйста.</div><div>&nbsp;</div><div>&nbsp;</div><div>27.11.2026, 10:00, \"Милана "
        "Одинцова\" &lt;milana.odintsova@bk.test&gt;:</div><blockquote>"
        f"{HTML_ORIGINAL}</blockquote>",
    ),
    (
        "mailru",
        f"{HTML_ANSWER}<div>&nbsp;</div><div class=\"mail-quote-collapse\">"
        '<blockquote data-o-mail-quote-node="1" style="border-left:1px solid #0857A6; margin:10px; '
        'padding:0 0 0 10px;"><span data-o-mail-quote="1">Пятница, 27 ноября 2026, 10:00 +03:00 от '
        'Милана Одинцова &lt;milana.odintsova@bk.test&gt;:</span><br data-o-mail-quote="1">'
        f"{HTML_ORIGINAL}</blockquote></div>",
    ),
    (
        "mailru-older",
        f"{HTML_ANSWER}<div>&nbsp;</div><div>Пятница, 27 ноября 2026, 10:00 +03:00 от Милана "
        '&lt;<a href="mailto:m@bk.test">m@bk.test</a>&gt;:<br><blockquote style="border-left:1px '
        f'solid #0857A6; margin:10px; padding:0 0 0 10px;">{HTML_ORIGINAL}</blockquote></div>',
    ),
]


@pytest.mark.parametrize("html", [h for _, h in HTML], ids=[n for n, _ in HTML])
def test_html_replies_without_text_part(html):
    assert extract_reply("", html) == ANSWER


@pytest.mark.parametrize("html", [h for _, h in HTML], ids=[n for n, _ in HTML])
def test_html_quote_markup_wins_over_text_part(html):
    # A text part whose quote header we would not recognise: the HTML side decides.
    text = f"{ANSWER}\n\nкто-то когда-то написал\n{QUOTED}\nи ещё строка"
    assert extract_reply(text, html) == ANSWER


def test_html_without_quote_markup_uses_text_part():
    text = f"{ANSWER}\n\nOn Fri, Nov 27, 2026 at 10:00 AM M <m@bk.test> wrote:\n{QUOTED}"
    html = "<div>Совсем другой текст в HTML</div>"
    assert extract_reply(text, html) == ANSWER


def test_html_inline_answers_are_kept_whole():
    html = (
        "<div>27.11.2026, 10:00, \"Милана\" &lt;m@bk.test&gt;:</div>"
        "<blockquote><div>Когда консультация по алгебре?</div></blockquote>"
        "<div>В среду в 15:00.</div>"
        "<blockquote><div>И можно ли сдать работу позже?</div></blockquote>"
        "<div>Можно до пятницы.</div>"
    )
    assert strip_html_quotes(html) == html
    assert extract_reply("", html) == (
        '27.11.2026, 10:00, "Милана" <m@bk.test>:\n'
        "> Когда консультация по алгебре?\n"
        "В среду в 15:00.\n"
        "> И можно ли сдать работу позже?\n"
        "Можно до пятницы."
    )


def test_html_to_text_basics():
    html = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<script>alert(1)</script><p>Первый&nbsp;абзац &laquo;в&nbsp;кавычках&raquo;</p>"
        "<div>Строка<br>перенос</div><div><br></div>"
        "<ul><li>один</li><li>два</li></ul><ol><li>раз</li><li>два</li></ol>"
        "<table><tr><td>Алгебра</td><td>среда</td></tr><tr><td>Физика</td><td>пятница</td></tr></table>"
        '<p>Ссылка: <a href="https://sferum.test/join">вступить в чат</a>, '
        '<a href="https://uchi.test">https://uchi.test</a></p>'
        "<p>   много    пробелов\n и\tпереносов   </p></body></html>"
    )
    assert html_to_text(html) == (
        "Первый абзац «в кавычках»\n"
        "Строка\nперенос\n\n"
        "- один\n- два\n1. раз\n2. два\n"
        "Алгебра среда\nФизика пятница\n"
        "Ссылка: вступить в чат (https://sferum.test/join), https://uchi.test\n"
        "много пробелов и переносов"
    )


def test_strip_html_quotes_leaves_unquoted_html_alone():
    html = "<p>Просто ответ без цитаты</p>"
    assert strip_html_quotes(html) == html


def test_own_blockquote_without_attribution_is_not_a_quote():
    html = "<p>Правило такое:</p><blockquote>Жи и ши пиши с буквой и.</blockquote>"
    assert strip_html_quotes(html) == html
    assert extract_reply("", html) == "Правило такое:\nЖи и ши пиши с буквой и."


def test_html_to_text_prefixes_quoted_letters():
    html = ('<div>Ответ</div><blockquote type="cite"><div>Вопрос</div>'
            '<blockquote type="cite">Старый вопрос</blockquote></blockquote>')
    assert html_to_text(html) == "Ответ\n> Вопрос\n> > Старый вопрос"


def test_citation_after_a_time_is_not_a_quote():
    html = "<p>Консультация в среду в 15:00:</p><blockquote>Тема: квадратные уравнения</blockquote>"
    assert strip_html_quotes(html) == html
