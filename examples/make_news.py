"""Generate examples/news.jsonl: short, invented news sentences for trying Quorum.

Run `python examples/make_news.py` to rebuild it; the output is deterministic.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PEOPLE = [
    "Maria Okafor",
    "Daniel Reyes",
    "Aiko Tanaka",
    "Lena Fischer",
    "Omar Haddad",
    "Grace Liu",
    "Tomás Silva",
    "Priya Nair",
    "Jonas Berg",
    "Nadia Petrova",
]
ORGS = [
    "Northwind Labs",
    "Helios Energy",
    "the City Council",
    "Bluebird Bank",
    "Orbit Telecom",
    "the Ministry of Health",
    "Kestrel Motors",
    "Open Fields Trust",
    "Atlas Robotics",
    "Civic Data Union",
]
PRODUCTS = [
    "the Nimbus X phone",
    "Aurora 2 headset",
    "the Sparrow e-bike",
    "Quanta OS",
    "the Vega smartwatch",
    "Pulse earbuds",
    "the Terra heat pump",
    "Lumen glasses",
]
PLACES = [
    "Lisbon",
    "Nairobi",
    "Osaka",
    "Toronto",
    "Rotterdam",
    "Valparaíso",
    "Kraków",
    "Auckland",
    "Marseille",
    "Pune",
]
TECH = [
    "{org} unveiled {product} at a launch event in {place}.",
    "{person} of {org} said {product} would ship to {place} next spring.",
    "Reviewers in {place} praised the battery life of {product}.",
    "{org} recalled {product} after reports of overheating in {place}.",
    "{person} demonstrated {product} to developers in {place} on Tuesday.",
]
POLITICS = [
    "{person} was elected mayor of {place} after a close race.",
    "{org} approved a new budget for {place} on Monday.",
    "{person} criticised {org} over delays to the {place} tram line.",
    "Voters in {place} backed a proposal by {org} to expand bike lanes.",
    "{person} met officials from {org} in {place} to discuss housing.",
]
OTHER = [
    "Heavy rain closed several roads around {place} this morning.",
    "{person} won the marathon in {place} in record time.",
    "A new museum of photography opened in {place}.",
    "{person} donated part of her prize to {org}.",
]


def main(count: int = 300, seed: int = 7) -> None:
    rng = random.Random(seed)
    out = Path(__file__).with_name("news.jsonl")
    seen: set[str] = set()
    with out.open("w", encoding="utf-8") as handle:
        while len(seen) < count:
            topic, templates = rng.choice([("tech", TECH), ("politics", POLITICS), ("other", OTHER)])
            text = rng.choice(templates).format(
                person=rng.choice(PEOPLE),
                org=rng.choice(ORGS),
                product=rng.choice(PRODUCTS),
                place=rng.choice(PLACES),
            )
            if text in seen:
                continue
            seen.add(text)
            record = {"text": text, "meta": {"source": "quorum-examples", "topic": topic, "id": len(seen)}}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
