"""Unit tests for helpdesk.understand.classify (pure: a hand-made roster, no files)."""
from __future__ import annotations

import time

import pytest

from helpdesk.domain import CATEGORIES, Assignment, ParsedLetter, Roster, StaffMember, Student
from helpdesk.understand import morph
from helpdesk.understand.classify import Classifier, classify, own_text
from helpdesk.understand.lexicon import load_lexicon

D = "school.test"


def _student(email, name, cls, *parents):
    return Student(f"{email}@{D}", name, cls, tuple(f"{p}@{D}" for p in parents))


def _staff(email, name, *roles):
    return StaffMember(f"{email}@{D}", name, frozenset(roles))


def _assign(cls, *pairs):
    return [Assignment(cls, subj, f"{t}@{D}") for subj, t in pairs]


ROSTER = Roster(
    students=(
        _student("lev", "Кузьмин Лев Дмитриевич", "7В", "kuzmina"),
        _student("gleb", "Ситников Глеб Романович", "7В"),
        _student("taya", "Афанасьева Таисия Олеговна", "7В"),
        _student("tim", "Фомин Тимофей Сергеевич", "5В", "fomina"),
        _student("alena", "Фомина Алёна Сергеевна", "9В", "fomina"),
        _student("roman6", "Зотов Роман Ильич", "6Б"),
        _student("roman10", "Зотов Роман Андреевич", "10Б"),
        _student("mira", "Третьякова Мирослава Денисовна", "6Б"),
        _student("kirill", "Тимофеев Кирилл Андреевич", "11А"),
    ),
    staff=(
        _staff("deputy", "Ковалевская Нина Аркадьевна", "deputy"),
        _staff("it", "Савельев Артур Ринатович", "it"),
        _staff("karpenko", "Карпенко Дмитрий Анатольевич", "teacher"),
        _staff("lisitsyna", "Лисицына Валентина Павловна", "teacher"),
        _staff("shubina", "Шубина Мария Константиновна", "teacher"),
        _staff("vorobyov", "Воробьёв Константин Ильич", "teacher"),
        _staff("semenova", "Семёнова Оксана Юрьевна", "teacher"),
    ),
    class_teachers={"5В": f"karpenko@{D}", "6Б": f"semenova@{D}", "7В": f"shubina@{D}",
                    "9В": f"lisitsyna@{D}", "10Б": f"vorobyov@{D}", "11А": f"karpenko@{D}"},
    assignments=tuple(
        _assign("5В", ("математика", "karpenko"), ("английский язык", "shubina"))
        + _assign("6Б", ("математика", "karpenko"), ("русский язык", "semenova"))
        + _assign("7В", ("алгебра", "karpenko"), ("геометрия", "lisitsyna"), ("немецкий язык", "shubina"),
                  ("физика", "vorobyov"), ("русский язык", "semenova"))
        + _assign("9В", ("алгебра", "lisitsyna"), ("геометрия", "lisitsyna"), ("физика", "vorobyov"),
                  ("химия", "semenova"))
        + _assign("10Б", ("английский язык", "shubina"), ("английский язык", "karpenko"),
                  ("физика", "vorobyov"))
        + _assign("11А", ("алгебра", "karpenko"), ("геометрия", "lisitsyna"))
    ),
)


def letter(text: str, subject: str = "", frm: str = "stranger@mail.test") -> ParsedLetter:
    return ParsedLetter(
        message_id="<x@test>", in_reply_to=None, references=(), from_addr=frm, from_name="",
        to=(f"school@{D}",), subject=subject, date=None, text=text, html=None, headers={},
    )


def from_student(text: str, subject: str = "", who: str = "lev") -> ParsedLetter:
    return letter(text, subject, f"{who}@{D}")


# --------------------------------------------------------------------------- morph

def test_morph_lemmas_and_tokens():
    assert "алгебра" in morph.lemmas("алгебре")
    assert "геометрия" in morph.lemmas("Геометрией")
    assert morph.norm("Алёна") == "алена"
    toks = morph.tokens("Дневник.ру, лит-ра и 7Б")
    assert [t.norm for t in toks] == ["дневник", "ру", "лит-ра", "и", "7б"]
    assert toks[0].start == 0 and toks[0].end == len("Дневник")


# --------------------------------------------------------------------------- sender & class

def test_student_by_address():
    c = classify(from_student("не понимаю задачу по алгебре"), ROSTER)
    assert (c.sender_role, c.class_name, c.student.email) == ("student", "7В", f"lev@{D}")
    assert c.reasons[0].startswith("Отправитель — ученик 7В Кузьмин Лев")


@pytest.mark.parametrize("text, expected", [
    ("Здравствуйте, я ученица 7В, не понимаю алгебру", "7В"),
    ("Сын учится в 7 «В» классе, вопрос по алгебре", "7В"),
    ("Мы из 10-Б, вопрос по физике", "10Б"),
    ("Тимофеев, 11а кл. Вопрос по алгебре", "11А"),
    ("я ученица 5-В, не получается задача", "5В"),
    ("10 Б класс, вопрос по физике", "10Б"),
    ("я из седьмого в, как решать уравнение", "7В"),
    ("дочь из девятого «В» класса, задача по химии", "9В"),
    ("мы из 9-го В класса", "9В"),
    ("сын в 7B, не может решить задачу", "7В"),  # Latin look-alike
    ("сын в 4b", None),  # transliteration: 4Б is not a class of this school
    ("Мой сын заканчивает 9 класс, принимаете ли вы в 10 класс?", None),
    ("длина в 3 раза больше ширины, нужно выучить 5 а потом ещё 2", None),
    ("ребёнок в 5В, а второй в 9В", None),  # two classes: cannot choose
])
def test_class_from_text(text, expected):
    c = classify(letter(text), ROSTER)
    assert c.sender_role == "unknown"
    assert c.class_name == expected


def test_bare_grade_is_explained():
    c = classify(letter("Мой сын заканчивает 9 класс в другой школе. Какие профили будут?"), ROSTER)
    assert c.class_name is None
    assert any("без буквы" in r for r in c.reasons)


@pytest.mark.parametrize("text, cls", [
    ("Пишет бабушка Ситникова Глеба, нужны задания на бумаге", "7В"),
    ("Пишет дедушка Таисии Афанасьевой, нужны задания на бумаге", "7В"),
    ("Прошу передать задания для Глебу Ситникову", "7В"),
    ("Глеб Ситников заболел, нужны задания на бумаге", "7В"),
])
def test_unknown_sender_student_name_in_any_case(text, cls):
    c = classify(letter(text), ROSTER)
    assert c.class_name == cls
    assert c.student is not None and c.student.class_name == cls


def test_name_matching_two_students_gives_no_class():
    c = classify(letter("добрый день это Роман Зотов. не понимаю деепричастный оборот"), ROSTER)
    assert c.class_name is None
    assert any("нескольким ученикам" in r for r in c.reasons)


@pytest.mark.parametrize("text, cls", [
    ("Это письмо про старшую, Алёну. Не понимает окислительно-восстановительные реакции.", "9В"),
    ("У Алёны не получается задача по химии.", "9В"),
    ("Тимофею задали задачу по математике, он не понимает.", "5В"),
    ("Вопрос про ребёнка из 5В: не понимает задачу по математике.", "5В"),
])
def test_parent_with_two_children_picks_named_child(text, cls):
    c = classify(letter(text, frm=f"fomina@{D}"), ROSTER)
    assert c.sender_role == "parent"
    assert c.class_name == cls


def test_parent_with_two_children_not_named():
    c = classify(letter("У ребёнка пропали задания на ЯКлассе, нет доступа", frm=f"fomina@{D}"), ROSTER)
    assert (c.sender_role, c.class_name, c.category) == ("parent", None, "technical")


def test_parent_with_one_child():
    c = classify(letter("Сын не понимает задачу по алгебре", frm=f"kuzmina@{D}"), ROSTER)
    assert (c.sender_role, c.class_name, c.student.email) == ("parent", "7В", f"lev@{D}")


def test_staff_sender_with_several_classes_has_no_class():
    c = classify(letter("При выставлении оценок в Дневник.ру за работы 7В и 9В оценки пропадают.",
                        frm=f"vorobyov@{D}"), ROSTER)
    assert (c.sender_role, c.class_name, c.category) == ("staff", None, "technical")


# --------------------------------------------------------------------------- subject

@pytest.mark.parametrize("text, subject", [
    ("вопрос по алгебре", "алгебра"),
    ("не понимаю алгебру", "алгебра"),
    ("проблемы с геометрией", "геометрия"),
    ("задали по физике опыт", "физика"),
    ("задание по английскому", "английский язык"),
    ("по русскому языку упражнение", "русский язык"),
    ("вопрос по истории", "история"),
])
def test_subject_morphology(text, subject):
    assert classify(from_student(text), ROSTER).subject == subject


@pytest.mark.parametrize("text, subject", [
    ("в матеше не понимаю номер", "математика"),
    ("по матану задали", "математика"),
    ("на физре надо сдать", "физическая культура"),
    ("по инфе задали", "информатика"),
    ("по русичу упражнение", "русский язык"),
    ("по англу не понимаю", "английский язык"),
    ("по лит-ре задали", "литература"),
    ("по ИЗО задали натюрморт", "изобразительное искусство"),
    ("по ОБЖ задание", "основы безопасности и защиты родины"),
    ("по ОБЗР задание", "основы безопасности и защиты родины"),
    ("по окружайке задали", "окружающий мир"),
    ("по иностранке задали", "иностранный язык"),
    ("по обществу задали", "обществознание"),
])
def test_subject_slang(text, subject):
    assert classify(from_student(text), ROSTER).subject == subject


@pytest.mark.parametrize("text, subject", [
    ("не понимаю задачу по матиматике", "математика"),
    ("что задали по физеке?", "физика"),
    ("помогите с геометреей", "геометрия"),
])
def test_subject_typos(text, subject):
    c = classify(from_student(text), ROSTER)
    assert c.subject == subject
    assert any("опечатк" in r for r in c.reasons)


@pytest.mark.parametrize("text, subject", [
    ("Как с помощью теоремы Виета найти корни?", "алгебра"),
    ("Как доказать теорему Пифагора?", "геометрия"),
    ("не понимаю закон Ома", "физика"),
    ("как определить валентность", "химия"),
    ("где ставить запятые при причастном обороте", "русский язык"),
    ("когда использовать Present Perfect", "английский язык"),
    ("найти площадь прямоугольника", "геометрия"),
    ("расставить коэффициенты в окислительно-восстановительной реакции", "химия"),
])
def test_subject_topics(text, subject):
    assert classify(from_student(text), ROSTER).subject == subject


def test_explicit_name_beats_topic_words():
    c = classify(from_student("по физике задали: как валентность влияет на формулу?"), ROSTER)
    assert c.subject == "физика"


def test_mathematics_with_geometry_topic_is_geometry():
    c = classify(from_student("По математике задача: найти площадь треугольника"), ROSTER)
    assert c.subject == "геометрия"


def test_preposition_izo_is_not_art():
    c = classify(from_student("стараюсь изо всех сил, но не понимаю задачу"), ROSTER)
    assert c.subject is None


def test_teacher_addressed_by_name_gives_subject():
    c = classify(from_student("Константин Ильич, здравствуйте! Не понимаю задачу 5.", who="lev"), ROSTER)
    assert (c.category, c.subject) == ("subject_help", "физика")


# --------------------------------------------------------------------------- category

@pytest.mark.parametrize("subject, text, category", [
    ("", "Не могу войти в Сферум, пишет что нет приглашения", "technical"),
    ("пароль от дневника", "Какой логин у ребёнка и как сбросить пароль?", "technical"),
    ("", "Электронный журнал не сохраняет оценки, страница обновляется", "technical"),
    ("", "Я хочу пожаловаться на учителя, она при всех накричала на меня", "complaint"),
    ("Нет ответа", "Две недели не можем получить ответ от учителя, прошу разобраться", "complaint"),
    ("", "Где посмотреть расписание консультаций по алгебре?", "organizational"),
    ("", "В каком виде сдавать домашние задания и до какого числа?", "organizational"),
    ("пропуск в журнале", "У меня стоит Н за урок, но я был онлайн, камера не работала", "organizational"),
    ("", "Как будут организованы занятия в режиме дистанционного обучения?", "organizational"),
    ("", "У нас нет интернета на даче, можно получить задания на бумаге?", "paper_materials"),
    ("", "Компьютера нет, можно распечатать задания и забрать в школе?", "paper_materials"),
    ("", "Можно записаться на консультацию по физике?", "consultation"),
    ("", "Хотела бы договориться о встрече или созвониться с классным руководителем", "consultation"),
    ("", "Можно позаниматься дополнительно по алгебре?", "consultation"),
    ("", "не понимаю как решать задачу по алгебре", "subject_help"),
    ("", "по физике задали домашнее задание, не получается", "subject_help"),
    ("", "Будут ли выдавать продуктовые наборы вместо бесплатного питания?", "other"),
    ("", "Добрый день, хотим поблагодарить школу.", "other"),
])
def test_category(subject, text, category):
    c = classify(from_student(text, subject), ROSTER)
    assert c.category == category, c.reasons


def test_complaint_about_help_not_given_in_time():
    text = ("Сын с 27 января не может получить ответ от учителя физики по поводу проверки работ. "
            "Прошло две недели, работы висят непроверенными. Прошу администрацию разобраться.")
    c = classify(letter(text, "Нет ответа", frm=f"kuzmina@{D}"), ROSTER)
    assert (c.category, c.subject) == ("complaint", "физика")


def test_quoted_text_is_ignored():
    text = ("Спасибо, а когда будут каникулы?\n\n"
            "10.02.2025, 18:44, \"Школа\" <school@school.test>:\n"
            "> Не можете войти в Сферум? Сбросьте пароль.\n> Логин — ваша почта.\n")
    assert "Сферум" not in own_text(text)
    c = classify(from_student(text), ROSTER)
    assert c.category == "organizational"


def test_outlook_style_quoted_header_is_cut():
    text = ("Когда будут каникулы?\n\nОт: Школа <school@school.test>\nОтправлено: 10 февраля 2025 г.\n"
            "Тема: Сферум\nНе можете войти в Сферум? Сбросьте пароль.")
    assert "Сферум" not in own_text(text)


def test_dotted_abbreviation_is_one_phrase():
    assert classify(from_student("по рус. яз задали упражнение"), ROSTER).subject == "русский язык"


# --------------------------------------------------------------------------- shape

def test_reasons_confidence_and_category_are_well_formed():
    for text in ("не понимаю задачу", "пароль", "", "Здравствуйте!", "жалоба"):
        c = classify(letter(text), ROSTER)
        assert c.category in CATEGORIES
        assert 0.0 <= c.confidence <= 1.0
        assert c.reasons and all(isinstance(r, str) and r for r in c.reasons)


def test_category_reason_quotes_the_cues():
    c = classify(from_student("по иностранке задали рассказ, не помню как сказать. можно подсказку", "по иностранке"),
                 ROSTER)
    reason = next(r for r in c.reasons if r.startswith("Категория"))
    assert "помощь по предмету" in reason and "«подсказку»" in reason


def test_extra_lexicon_file(tmp_path):
    extra = tmp_path / "our.toml"
    extra.write_text(
        '[[subject]]\nname = "физика"\nslang = ["физичка-шмизичка"]\n\n'
        '[[subject]]\nname = "астрономия"\nnames = ["звездоведение"]\n\n'
        '[other.cues]\n"лагерь" = 5\n',
        encoding="utf-8",
    )
    lex = load_lexicon([extra])
    clf = Classifier(ROSTER, lex)
    assert clf.classify(from_student("по физичке-шмизичке вопрос")).subject == "физика"
    assert clf.classify(from_student("вопрос по звездоведению")).subject == "астрономия"
    assert clf.classify(from_student("Будет ли летний лагерь?")).category == "other"


def test_roster_subject_missing_from_lexicon_is_still_recognised():
    roster = Roster(
        staff=(_staff("t", "Учителев Иван Иванович", "teacher"), _staff("d", "Завучева Анна Петровна", "deputy")),
        class_teachers={"8А": f"t@{D}"},
        assignments=(Assignment("8А", "черчение", f"t@{D}"),),
        students=(_student("s", "Иванов Пётр Петрович", "8А"),),
    )
    assert classify(letter("вопрос по черчению, не понимаю", frm=f"s@{D}"), roster).subject == "черчение"


def test_classify_is_fast_after_warm_up():
    texts = [
        "Здравствуйте! Как с помощью теоремы Виета найти корни уравнения? Не понимаю, как подбирать. Есения, 8Б",
        "Добрый день. Пишет дедушка Таисии Афанасьевой. Компьютера нет, прошу задания на бумаге.",
        "Сын учится в 10-Б. Сколько ещё продлится дистанционный формат? Итоговые контрольные очно или онлайн?",
    ] * 20
    letters = [letter(t + f" {i}") for i, t in enumerate(texts)]
    classify(letters[0], ROSTER)
    start = time.perf_counter()
    for item in letters:
        classify(item, ROSTER)
    per_letter = (time.perf_counter() - start) / len(letters)
    assert per_letter < 0.02, f"{per_letter * 1000:.1f} ms per letter"
