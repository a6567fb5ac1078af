"""Build the labelled near-duplicate set: `python -m bench.build_dedup_set [--shared DIR] [--out FILE]`.

Writes bench/data/dedup_gold.jsonl (deterministic: seed 0, no hash-order
dependence) from real documents of ../shared/data. One JSON object per line:
`id` (d00000.., shuffled so ids say nothing about clusters), `text`,
`cluster` (gold: same cluster = near-duplicates of each other), and for
analysis `origin`, `source_doc` (the real document it comes from), `variant`
(perturbations applied) and `group` (the hard-negative group, or null).

Base documents (all real text; see ../shared/README.md for licenses):
- c4: C4 web pages (web/c4_sample.jsonl) with 60+ words, cut to <= 4,000
  characters at a line end;
- ccnet: the 20 CCNet pages (web/multiple_files_cc_en_head-*.jsonl), same cut;
- wikipedia: the 30 English articles (web/wikipedia_en_sample.txt), each cut
  into up to 5 non-adjacent excerpts of 1,200-2,400 characters (consecutive
  sentences, the article text unchanged);
- zh: the Chinese Debian Reference (zh/debian-reference.zh-cn.txt.gz), body
  split at its numbered section headings, small sections merged up to >= 300
  characters and cut to <= 1,200 at a blank line (tables of contents skipped).

Clusters. Each seed document yields a cluster of 1-4 documents (sizes drawn
with probabilities .25/.35/.25/.15): the original plus 0-3 variants, each
made from the original independently by
- `reformat` (10 % of variants, alone): whitespace re-wrapped, case and digits
  changed, some punctuation removed, so that datatrove's `simplify_text` (what
  exact_dedup compares) is unchanged: an exact duplicate after normalisation;
- otherwise 1 (60 %) or 2 (40 %) distinct perturbations, applied in this order:
  - `drop(f)`: paragraphs removed (lines; sentence groups for one-line text),
    f = 5-20 % of the characters;
  - `truncate(f)`: only the first f = 70-90 % of the characters kept (cut at a
    space for space-separated text);
  - `substitute(r)`: a fraction r = 1-5 % of the words replaced by random words
    of the corpus vocabulary (for Chinese, r = 1-3 % of the CJK characters by
    random corpus characters, since Chinese is shingled by characters);
  - `header_footer`: a short random page header (breadcrumbs, date, author) and
    footer (share links, copyright), 10-40 words, as a mirror site adds.

Hard negatives (documents of different clusters that a dedup must NOT link;
their `group` names the kind, so bench.dedup can count false links per kind):
- `template:<site>:<fraction>`: distinct real pages (documents not used
  elsewhere) of one synthetic site, each wrapped in the same navigation header
  and footer (menus, trending headlines, newsletter, cookie notice, copyright,
  lists of related headlines). The template is `fraction` of each page's
  characters: six English sites (C4/CCNet pages) at 0.30, 0.50 (full pages),
  0.60, 0.70, 0.80, 0.85 (page content cut to 1,200, 900, 600, 500 characters
  at a line end: short pages in a heavy template, as product or tag pages),
  one Chinese site (Debian Reference sections cut to 500 characters) at 0.70.
  Two pages distinct but for such a template have a shingle Jaccard of about
  fraction / (2 - fraction): ~0.2 at 0.30, ~0.75 at 0.85, so the heavy sites
  are beyond what document-level MinHash can separate. A third of the pages
  also get a duplicate (the same page crawled again: same template, content
  perturbed by `substitute` or `drop`).
- `topic:wikipedia:<article>`: the excerpts of one Wikipedia article are
  distinct documents on the same subject (and related articles: Academy
  Awards / Academy Award for Best Production Design, Ayn Rand / Atlas
  Shrugged characters, Achilles / Apollo, Alien / Austin disambiguation
  pages...).
- `topic:zh:<chapter>`: sections of the same Debian Reference chapter.
- `topic:c4:<n>`: pairs of distinct C4 pages sharing the most rare keywords
  (IDF-weighted overlap), all kept as seeds.

Natural duplicates among the base documents would make the gold wrong, so
candidate pairs (datasketch LSH at threshold 0.3 on the same shingles as
minhash_dedup) are checked with exact shingle Jaccard, and a seed whose
Jaccard with another is >= 0.5 is dropped (the count is printed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")
DEFAULT_OUT = os.path.join(REPO, "bench", "data", "dedup_gold.jsonl")
SEED = 0

EN_MAX_CHARS = 4000
EN_MIN_WORDS = 60
WIKI_MIN, WIKI_MAX, WIKI_EXCERPTS = 1200, 2400, 5
ZH_MIN, ZH_MAX = 300, 1200
CLUSTER_SIZES = ((1, 0.25), (2, 0.35), (3, 0.25), (4, 0.15))
# Template sites: (share of each page's characters that is the site's header/footer, cap on the
# page content in characters or None). From a light template around full pages to short pages
# inside a heavy one (product or tag pages), where 5-gram MinHash cannot tell pages apart.
TEMPLATE_SITES_EN = ((0.30, None), (0.50, None), (0.60, 1200), (0.70, 900), (0.80, 600), (0.85, 500))
TEMPLATE_SITES_ZH = ((0.70, 500),)
TEMPLATE_PAGES = 6
C4_TOPIC_PAIRS = 20
NATURAL_DUP_JACCARD = 0.5

_CJK = re.compile(r"[\u4e00-\u9fff]")
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s+|(?=[A-Z\"]))")
_ZH_HEADING = re.compile(r"^\d+(?:\.\d+)*\.\s+\S")


@dataclass
class Doc:
    origin: str  # c4, ccnet, wikipedia, zh
    source_doc: str  # where in ../shared/data it comes from
    text: str
    topic: str | None = None  # same-topic group (wiki article, zh chapter)

    @property
    def is_zh(self) -> bool:
        return self.origin == "zh"


# --------------------------------------------------------------------------- base documents


def cut_at_line(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    if cut < limit // 2:
        cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip()


def load_web(shared: str) -> list[Doc]:
    docs = []
    with open(os.path.join(shared, "web", "c4_sample.jsonl"), encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            text = json.loads(line)["text"].strip()
            if len(text.split()) >= EN_MIN_WORDS:
                docs.append(Doc("c4", f"web/c4_sample.jsonl#{index}", cut_at_line(text, EN_MAX_CHARS)))
    for name in ("multiple_files_cc_en_head-0091.jsonl", "multiple_files_cc_en_head-0174.jsonl"):
        with open(os.path.join(shared, "web", name), encoding="utf-8") as handle:
            for index, line in enumerate(handle):
                text = json.loads(line)["text"].strip()
                if len(text.split()) >= EN_MIN_WORDS:
                    docs.append(Doc("ccnet", f"web/{name}#{index}", cut_at_line(text, EN_MAX_CHARS)))
    return docs


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def load_wikipedia(shared: str, rng: random.Random) -> list[Doc]:
    """Up to WIKI_EXCERPTS non-adjacent excerpts per article (contiguous article text)."""
    docs = []
    with open(os.path.join(shared, "web", "wikipedia_en_sample.txt"), encoding="utf-8") as handle:
        articles = [line.strip() for line in handle if line.strip()]
    for number, article in enumerate(articles):
        title = re.split(r" \(| is | was | are |, ", article, maxsplit=1)[0][:40]
        # Sentence start offsets in the article; excerpts are article[start:end] between them.
        starts = [0] + [m.end() for m in _SENTENCE_END.finditer(article)]
        excerpts, i = [], 0
        while i < len(starts) - 1:
            target = rng.randint(WIKI_MIN, WIKI_MAX)
            j = i + 1
            while j < len(starts) and starts[j] - starts[i] < target:
                j += 1
            end = starts[j] if j < len(starts) else len(article)
            if end - starts[i] >= WIKI_MIN:
                excerpts.append((starts[i], end))
            i = j + 1  # skip one sentence: excerpts never touch
        if len(excerpts) > WIKI_EXCERPTS:
            step = len(excerpts) / WIKI_EXCERPTS
            excerpts = [excerpts[int(k * step)] for k in range(WIKI_EXCERPTS)]
        for a, b in excerpts:
            docs.append(
                Doc(
                    "wikipedia",
                    f"web/wikipedia_en_sample.txt#{number}[{a}:{b}]",
                    article[a:b].strip(),
                    topic=f"wikipedia:{title}",
                )
            )
    return docs


def load_zh(shared: str) -> list[Doc]:
    with gzip.open(os.path.join(shared, "zh", "debian-reference.zh-cn.txt.gz"), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # The body starts at the second "序言" (the first is in the book's table of contents).
    body_start = [i for i, line in enumerate(lines) if line.strip() == "序言"][1]
    sections: list[tuple[str, list[str], int]] = []  # (heading, lines, line number)
    heading, current, start = "序言", [], body_start
    for number in range(body_start + 1, len(lines)):
        line = lines[number]
        if _ZH_HEADING.match(line):
            sections.append((heading, current, start))
            heading, current, start = line.strip(), [], number
        else:
            current.append(line)
    sections.append((heading, current, start))
    docs, pending, pending_start = [], [], None
    for heading, body, start in sections:
        text_lines = [line.rstrip() for line in body]
        non_empty = [line for line in text_lines if line.strip()]
        if non_empty and sum(bool(_ZH_HEADING.match(line.strip())) for line in non_empty) > len(non_empty) / 2:
            continue  # a chapter's table of contents
        pending.append(heading + "\n\n" + "\n".join(text_lines).strip("\n"))
        pending_start = start if pending_start is None else pending_start
        text = "\n\n".join(pending)
        if len(text) < ZH_MIN:
            continue
        if len(text) > ZH_MAX:
            cut = text.rfind("\n\n", 0, ZH_MAX)
            text = text[: cut if cut >= ZH_MIN else ZH_MAX].rstrip()
        chapter = heading.split(".")[0]
        docs.append(Doc("zh", f"zh/debian-reference.zh-cn.txt.gz:{pending_start + 1}", text, topic=f"zh:{chapter}"))
        pending, pending_start = [], None
    return [d for d in docs if len(_CJK.findall(d.text)) >= 100]


# --------------------------------------------------------------------------- perturbations


class Perturber:
    def __init__(self, rng: random.Random, en_vocab: list[str], zh_chars: list[str]):
        self.rng, self.en_vocab, self.zh_chars = rng, en_vocab, zh_chars

    def variant(self, doc: Doc) -> tuple[str, str]:
        rng = self.rng
        if rng.random() < 0.10:
            return self.reformat(doc.text), "reformat"
        ops = rng.sample(["drop", "truncate", "substitute", "header_footer"], 1 if rng.random() < 0.6 else 2)
        text, names = doc.text, []
        for op in ("drop", "truncate", "substitute", "header_footer"):
            if op in ops:
                text, name = getattr(self, op)(text, doc)
                names.append(name)
        return text, "+".join(names)

    def reformat(self, text: str) -> str:
        rng = self.rng
        words = text.split()
        out = []
        for w in words:
            r = rng.random()
            if r < 0.05:
                w = w.upper()
            elif r < 0.10:
                w = w.lower()
            w = re.sub(r"\d", lambda m: str(rng.randint(0, 9)), w) if rng.random() < 0.5 else w
            if rng.random() < 0.1:
                w = w.rstrip(",;:")
            out.append(w)
        # Re-wrap: lines of 8-16 words, as a different HTML-to-text extraction might.
        lines, i = [], 0
        while i < len(out):
            n = rng.randint(8, 16)
            lines.append(" ".join(out[i : i + n]))
            i += n
        result = "\n".join(lines)
        return result if result.strip() else text

    def units(self, text: str, zh: bool) -> list[str]:
        lines = text.split("\n")
        if sum(1 for line in lines if line.strip()) >= 4:
            return [line + "\n" for line in lines]
        parts = re.split(r"(?<=[。！？])", text) if zh else sentences(text)
        groups = [parts[i : i + 3] for i in range(0, len(parts), 3)]
        return [("" if zh else " ").join(g) + ("" if zh else " ") for g in groups]

    def drop(self, text: str, doc: Doc) -> tuple[str, str]:
        rng = self.rng
        units = self.units(text, doc.is_zh)
        goal = rng.uniform(0.05, 0.20) * len(text)
        order = list(range(1, len(units))) or [0]  # keep the first paragraph (title, lead)
        rng.shuffle(order)
        dropped, removed = set(), 0
        for index in order:
            size = len(units[index])
            if not units[index].strip() or removed + size > max(goal, 0.25 * len(text)):
                continue
            dropped.add(index)
            removed += size
            if removed >= goal:
                break
        if not dropped:  # one long paragraph: drop whole sentences from inside it instead
            return self.truncate_middle(text, goal, doc)
        out = "".join(u for i, u in enumerate(units) if i not in dropped).strip()
        return out, f"drop({removed / len(text):.2f})"

    def truncate_middle(self, text: str, goal: float, doc: Doc) -> tuple[str, str]:
        start = self.rng.randint(len(text) // 4, len(text) // 2)
        end = min(len(text), start + int(goal))
        if not doc.is_zh:
            start = text.rfind(" ", 0, start) + 1
            end_space = text.find(" ", end)
            end = end_space if end_space > 0 else len(text)
        return (text[:start] + text[end:]).strip(), f"drop({(end - start) / len(text):.2f})"

    def truncate(self, text: str, doc: Doc) -> tuple[str, str]:
        keep = self.rng.uniform(0.70, 0.90)
        cut = int(len(text) * keep)
        if not doc.is_zh:
            space = text.rfind(" ", 0, cut)
            cut = space if space > len(text) // 2 else cut
        return text[:cut].rstrip(), f"truncate({cut / len(text):.2f})"

    def substitute(self, text: str, doc: Doc) -> tuple[str, str]:
        rng = self.rng
        if doc.is_zh:
            rate = rng.uniform(0.01, 0.03)
            chars = list(text)
            positions = [i for i, ch in enumerate(chars) if _CJK.match(ch)]
            for i in rng.sample(positions, max(1, round(rate * len(positions)))) if positions else []:
                chars[i] = rng.choice(self.zh_chars)
            return "".join(chars), f"substitute({rate:.3f})"
        rate = rng.uniform(0.01, 0.05)
        tokens = re.split(r"(\s+)", text)  # keep the whitespace as it was
        positions = [i for i in range(0, len(tokens), 2) if tokens[i]]
        for i in rng.sample(positions, max(1, round(rate * len(positions)))) if positions else []:
            tokens[i] = rng.choice(self.en_vocab)
        return "".join(tokens), f"substitute({rate:.3f})"

    def header_footer(self, text: str, doc: Doc) -> tuple[str, str]:
        rng = self.rng
        if doc.is_zh:
            site = rng.choice(ZH_SITES)
            header = (
                f"{rng.choice(['首页', '主页'])} > {rng.choice(['技术', '文档', '教程', '开源'])} > 正文\n"
                f"发布时间：20{rng.randint(10, 23)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                f"  来源：{site}  作者：{rng.choice(ZH_NAMES)}"
            )
            footer = (
                f"分享到：{'、'.join(rng.sample(['微信', '微博', 'QQ空间', '豆瓣', '知乎'], 3))}\n"
                f"版权所有 © 20{rng.randint(10, 23)} {site} 保留所有权利。转载请注明出处。"
            )
        else:
            site = rng.choice(EN_SITES)
            header = (
                f"Home » {rng.choice(EN_SECTIONS)} » {' '.join(rng.sample(self.en_vocab, 3)).title()}\n"
                f"Posted on {rng.choice(MONTHS)} {rng.randint(1, 28)}, 20{rng.randint(10, 23)} "
                f"by {rng.choice(EN_NAMES)}"
            )
            footer = (
                f"Share this: {', '.join(rng.sample(['Facebook', 'Twitter', 'Email', 'Pinterest', 'LinkedIn', 'Reddit'], 3))}\n"
                f"Copyright © 20{rng.randint(10, 23)} {site}. All rights reserved."
            )
        parts = [header] if rng.random() < 0.8 else []
        parts.append(text)
        if rng.random() < 0.8 or len(parts) == 1:
            parts.append(footer)
        return "\n".join(parts), "header_footer"


EN_SITES = [
    "The Daily Ledger",
    "Riverside Post",
    "TechPulse",
    "Garden & Home",
    "Metro Weekly",
    "Open Notes",
    "Northern Herald",
    "Bright Side Blog",
]
EN_SECTIONS = ["News", "Blog", "Articles", "Local", "Features", "Community", "Resources", "Stories"]
EN_NAMES = ["admin", "Sarah Miller", "John Carter", "Editorial Staff", "Guest Author", "Maria Lopez", "webmaster"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ZH_SITES = ["开源中国", "技术博客", "Linux 中文社区", "软件之家", "自由软件论坛"]
ZH_NAMES = ["管理员", "小编", "张伟", "李娜", "网友投稿"]


# --------------------------------------------------------------------------- template sites


def fill_template(
    rng: random.Random, header: list[str], footer: list[str], optional: list[tuple[str, str]], headline, chars: int
) -> tuple[str, str]:
    """Grow a header/footer pair to about `chars` characters: the fixed lines, then optional
    blocks in random order, then headlines; stops at the first addition that reaches `chars`."""
    size = lambda: len("\n".join(header + footer))  # noqa: E731
    rng.shuffle(optional)
    for where, line in optional:
        if size() >= chars:
            break
        (header if where == "header" else footer).insert(len(header) if where == "header" else 0, line)
    while size() < chars:
        footer.insert(0, headline())
    return "\n".join(header), "\n".join(footer)


def english_template(rng: random.Random, site: str, vocab: list[str], chars: int) -> tuple[str, str]:
    """A long site header and footer of about `chars` characters in total."""

    def headline() -> str:
        return " ".join(rng.sample(vocab, rng.randint(4, 8))).capitalize()

    nav = [
        "Home",
        "News",
        "World",
        "Business",
        "Technology",
        "Science",
        "Health",
        "Sports",
        "Entertainment",
        "Lifestyle",
        "Travel",
        "Food",
        "Opinion",
        "Video",
        "Podcasts",
        "Events",
        "Shop",
        "Jobs",
    ]
    rng.shuffle(nav)
    about = [
        "About Us",
        "Contact",
        "Advertise",
        "Careers",
        "Privacy Policy",
        "Terms of Use",
        "Accessibility",
        "Sitemap",
        "RSS Feeds",
        "Help Center",
    ]
    header = [f"{site} | {' | '.join(nav[: rng.randint(8, 14)])}"]
    footer = [f"© 20{rng.randint(10, 23)} {site} Media Group. All rights reserved."]
    optional = [
        ("header", "Search Log in Register Subscribe"),
        ("header", "Trending now: " + " · ".join(headline() for _ in range(3))),
        ("header", "Editor's pick: " + headline()),
        ("footer", f"Sign up for our newsletter and get the best of {site} delivered to your inbox every morning."),
        (
            "footer",
            "We use cookies to give you the best experience on our website. By continuing to browse you "
            "agree to our use of cookies. Read our Privacy Policy and Terms of Service to learn more.",
        ),
        ("footer", " · ".join(about)),
        ("footer", "Reproduction in whole or in part without written permission is prohibited."),
        ("footer", "Popular posts: " + " · ".join(headline() for _ in range(2))),
    ]
    return fill_template(rng, header, footer, optional, headline, chars)


def chinese_template(rng: random.Random, site: str, chars_pool: list[str], chars: int) -> tuple[str, str]:
    def headline() -> str:
        return "".join(rng.choice(chars_pool) for _ in range(rng.randint(8, 14)))

    nav = ["首页", "新闻", "下载", "文档", "社区", "论坛", "博客", "问答", "软件", "教程", "视频", "活动", "招聘"]
    rng.shuffle(nav)
    header = [f"{site} | {' | '.join(nav[:8])}"]
    footer = [f"版权所有 © 2008-20{rng.randint(15, 23)} {site} 保留所有权利"]
    optional = [
        ("header", "登录 注册 搜索"),
        ("header", "热门文章：" + "；".join(headline() for _ in range(3))),
        ("footer", f"订阅{site}的电子邮件，每天获取最新的开源资讯和技术文章。"),
        ("footer", "本站使用 Cookie 以改善您的浏览体验。继续浏览即表示您同意我们的隐私政策和服务条款。"),
        ("footer", "关于我们 · 联系我们 · 广告合作 · 加入我们 · 隐私政策 · 网站地图 · 意见反馈"),
        ("footer", f"未经许可不得转载 京ICP备{rng.randint(10**7, 10**8 - 1)}号"),
        ("footer", "推荐阅读：" + "；".join(headline() for _ in range(2))),
    ]
    return fill_template(rng, header, footer, optional, headline, chars)


# --------------------------------------------------------------------------- natural duplicates


def shingle_sets(docs: list[Doc]):
    from stages.minhash_dedup import MinHashParams, shingle_hashes

    params = MinHashParams()
    return params, [shingle_hashes(d.text, "zh" if d.is_zh else "en", params) for d in docs]


def natural_duplicates(docs: list[Doc]) -> list[tuple[int, int, float]]:
    """Pairs of base documents with shingle Jaccard >= NATURAL_DUP_JACCARD."""
    from datasketch import MinHash, MinHashLSH

    params, hashes = shingle_sets(docs)
    lsh = MinHashLSH(threshold=0.3, num_perm=params.num_perm)
    sketches = []
    for index, hv in enumerate(hashes):
        m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=lambda x: x, scheme="legacy")
        m.update_batch(hv)
        lsh.insert(index, m)
        sketches.append(m)
    sets = [set(h.tolist()) for h in hashes]
    found = []
    for index, m in enumerate(sketches):
        for other in sorted(lsh.query(m)):
            if other > index:
                jaccard = len(sets[index] & sets[other]) / len(sets[index] | sets[other])
                if jaccard >= NATURAL_DUP_JACCARD:
                    found.append((index, other, jaccard))
    return found


# --------------------------------------------------------------------------- C4 topic pairs


def keyword_pairs(docs: list[Doc], n_pairs: int) -> list[tuple[int, int, list[str]]]:
    """Pairs of distinct documents sharing the most rare keywords (sum of IDF of shared words)."""
    words = [sorted({w for w in re.findall(r"[a-z]{4,}", d.text.lower())}) for d in docs]
    df = Counter(w for ws in words for w in ws)
    idf = {w: math.log(len(docs) / c) for w, c in df.items()}
    keyword_sets = []
    for ws in words:  # a page's keywords: its 30 rarest words that occur in at least 2 pages
        shared = sorted((w for w in ws if df[w] >= 2), key=lambda w: (-idf[w], w))
        keyword_sets.append(set(shared[:30]))
    scored = []
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            common = keyword_sets[i] & keyword_sets[j]
            if len(common) >= 3:
                scored.append((sum(idf[w] for w in common), i, j, sorted(common)))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    used, pairs = set(), []
    for _, i, j, common in scored:
        if i not in used and j not in used:
            pairs.append((i, j, common))
            used.update((i, j))
        if len(pairs) == n_pairs:
            break
    return pairs


# --------------------------------------------------------------------------- build


def cluster_size(rng: random.Random) -> int:
    r, acc = rng.random(), 0.0
    for size, p in CLUSTER_SIZES:
        acc += p
        if r < acc:
            return size
    return CLUSTER_SIZES[-1][0]


def build(shared: str) -> tuple[list[dict], dict]:
    rng = random.Random(SEED)
    web = load_web(shared)
    wiki = load_wikipedia(shared, rng)
    zh = load_zh(shared)
    en_vocab = sorted(
        w
        for w, c in Counter(w for d in web + wiki for w in re.findall(r"[A-Za-z]{3,12}", d.text.lower())).items()
        if c >= 3
    )
    zh_chars = sorted(ch for ch, c in Counter(ch for d in zh for ch in _CJK.findall(d.text)).items() if c >= 5)

    # Drop base documents that naturally near-duplicate another one (keep the first).
    base = web + wiki + zh
    natural = natural_duplicates(base)
    gone = {j for _, j, _ in natural}
    base = [d for k, d in enumerate(base) if k not in gone]
    web = [d for d in base if d.origin in ("c4", "ccnet")]
    wiki = [d for d in base if d.origin == "wikipedia"]
    zh = [d for d in base if d.origin == "zh"]

    # Template-site pages: C4/CCNet pages of similar length (sorted by length, consecutive), and
    # Debian Reference sections, none of them used as seeds.
    c4 = [d for d in web if d.origin == "c4"]
    pairs = keyword_pairs(c4, C4_TOPIC_PAIRS)
    for n, (i, j, _common) in enumerate(pairs):
        c4[i].topic = c4[j].topic = f"c4:{n}"
    free = [d for d in web if d.topic is None and 1500 <= len(d.text) <= 3500]
    rng.shuffle(free)
    template_pool = sorted(free[: len(TEMPLATE_SITES_EN) * TEMPLATE_PAGES], key=lambda d: (len(d.text), d.source_doc))
    zh_free = [d for d in zh if 900 <= len(d.text) <= 1200]
    rng.shuffle(zh_free)
    zh_template_pool = zh_free[: len(TEMPLATE_SITES_ZH) * TEMPLATE_PAGES]
    in_templates = {id(d) for d in template_pool + zh_template_pool}

    # Seeds: every other document, Wikipedia capped to keep the file small.
    seeds = [d for d in web if id(d) not in in_templates]
    seeds += wiki
    zh_seeds = [d for d in zh if id(d) not in in_templates]
    seeds += zh_seeds[:150] if len(zh_seeds) > 150 else zh_seeds

    perturber = Perturber(rng, en_vocab, zh_chars)
    records: list[dict] = []
    cluster = 0

    def add(text: str, doc: Doc, variant: str, group: str | None) -> None:
        records.append(
            {
                "text": text,
                "cluster": cluster,
                "origin": doc.origin,
                "source_doc": doc.source_doc,
                "variant": variant,
                "group": group,
            }
        )

    for doc in seeds:
        group = f"topic:{doc.topic}" if doc.topic else None
        add(doc.text, doc, "original", group)
        for _ in range(cluster_size(rng) - 1):
            text, name = perturber.variant(doc)
            add(text, doc, name, group)
        cluster += 1

    sites = []
    for number, (fraction, cap) in enumerate(TEMPLATE_SITES_EN):
        pages = template_pool[number * TEMPLATE_PAGES : (number + 1) * TEMPLATE_PAGES]
        sites.append((f"en{number}", pages, False, fraction, cap))
    for number, (fraction, cap) in enumerate(TEMPLATE_SITES_ZH):
        pages = zh_template_pool[number * TEMPLATE_PAGES : (number + 1) * TEMPLATE_PAGES]
        sites.append((f"zh{number}", pages, True, fraction, cap))
    site_names = [
        "Cedar Valley Gazette",
        "PixelForge",
        "The Morning Brief",
        "Harbor City News",
        "Wanderlust Daily",
        "Sparrow & Co.",
    ]
    for number, (site, pages, is_zh, fraction, cap) in enumerate(sites):
        if cap:  # short pages: the start of each page, cut at a line end
            pages = [Doc(p.origin, p.source_doc, cut_at_line(p.text, cap), p.topic) for p in pages]
        mean = sum(len(p.text) for p in pages) / len(pages)
        boilerplate = int(mean * fraction / (1 - fraction))
        if is_zh:
            header, footer = chinese_template(rng, ["自由软件论坛", "开源中国社区"][number % 2], zh_chars, boilerplate)
        else:
            header, footer = english_template(rng, site_names[number % len(site_names)], en_vocab, boilerplate)
        group = f"template:{site}:{fraction:.2f}"
        for k, page in enumerate(pages):
            add(f"{header}\n{page.text}\n{footer}", page, "template", group)
            if k % 3 == 0:  # the same page crawled again: same template, content changed
                text, name = (perturber.substitute if k % 2 == 0 else perturber.drop)(page.text, page)
                add(f"{header}\n{text}\n{footer}", page, "template+" + name, group)
            cluster += 1

    order = list(range(len(records)))
    rng.shuffle(order)
    out = []
    for new_id, index in enumerate(order):
        record = records[index]
        out.append({"id": f"d{new_id:05d}", **record})
    out.sort(key=lambda r: r["id"])
    info = {"natural_duplicates_dropped": len(gone), "natural_pairs": natural, "base": base, "pairs": pairs}
    return out, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=DEFAULT_SHARED, help="../shared/data")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    records, info = build(args.shared)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    clusters = Counter(r["cluster"] for r in records)
    sizes = Counter(clusters.values())
    pairs = sum(n * (n - 1) // 2 for n in clusters.values())
    print(
        f"wrote {args.out}: {len(records)} documents, {len(clusters)} clusters, {pairs} gold duplicate pairs, "
        f"{os.path.getsize(args.out) / 1e6:.2f} MB"
    )
    print("cluster sizes " + " ".join(f"{k}:{v}" for k, v in sorted(sizes.items())))
    print(
        "documents per origin " + " ".join(f"{k}:{v}" for k, v in sorted(Counter(r["origin"] for r in records).items()))
    )
    kinds = Counter(r["variant"].split("(")[0] if "+" not in r["variant"] else "two_perturbations" for r in records)
    print("variants " + " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())))
    groups = Counter(r["group"].split(":")[0] + ":" + r["group"].split(":")[1] for r in records if r["group"])
    print("hard-negative groups (documents) " + " ".join(f"{k}:{v}" for k, v in sorted(groups.items())))
    print(f"natural near-duplicates among base documents dropped: {info['natural_duplicates_dropped']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
