#!/usr/bin/env python3
"""Generates configs/catalog.example.json: a convenience store's master data.

At least 1,000 SKUs with realistic names, categories, prices, tax rates and valid EAN-13 /
UPC-A / EAN-8 barcodes (some SKUs carry two), a few scheduled price changes, promotions of
every kind, and opening stock. Deterministic: the same seed gives the same file.

    python3 scripts/gen_catalog.py [--seed 7] [--count 1200] [--out configs/catalog.example.json]
"""
import argparse
import json
import random

CATEGORIES = {
    # category: (tax basis points, price range in minor units (VND-like, 0 decimals), products)
    "Beverages": (1000, (8000, 45000), ["Cola", "Lemon Soda", "Green Tea", "Iced Coffee", "Mineral Water",
                                          "Orange Juice", "Energy Drink", "Sparkling Water", "Milk Tea", "Coconut Water"]),
    "Snacks": (1000, (6000, 60000), ["Potato Chips", "Corn Puffs", "Peanuts", "Seaweed Snack", "Crackers",
                                      "Pretzels", "Rice Crackers", "Cashews", "Popcorn", "Shrimp Chips"]),
    "Confectionery": (1000, (3000, 90000), ["Milk Chocolate", "Dark Chocolate", "Gummy Bears", "Mint Gum",
                                             "Lollipop", "Caramel Bar", "Wafer Bar", "Jelly Beans", "Toffee", "Marshmallows"]),
    "Dairy": (500, (7000, 80000), ["Fresh Milk", "Yogurt", "Cheese Slices", "Butter", "Drinking Yogurt",
                                    "Condensed Milk", "Cream Cheese", "Soy Milk", "Chocolate Milk", "Kefir"]),
    "Bakery": (500, (5000, 50000), ["Sandwich Bread", "Croissant", "Banh Mi", "Muffin", "Donut",
                                     "Sponge Cake", "Cookies", "Bagel", "Cinnamon Roll", "Pound Cake"]),
    "Ready Meals": (800, (15000, 75000), ["Fried Rice", "Chicken Noodles", "Onigiri", "Sushi Roll", "Pasta Salad",
                                           "Dumplings", "Curry Rice", "Sandwich", "Spring Rolls", "Pho Bowl"]),
    "Instant Food": (500, (4000, 40000), ["Instant Noodles", "Cup Noodles", "Instant Porridge", "Instant Soup",
                                           "Instant Pho", "Mac and Cheese", "Instant Rice", "Ramen", "Udon Cup", "Miso Soup"]),
    "Personal Care": (1000, (12000, 180000), ["Shampoo", "Toothpaste", "Toothbrush", "Body Wash", "Deodorant",
                                               "Hand Cream", "Razor", "Tissues", "Wet Wipes", "Lip Balm"]),
    "Household": (1000, (10000, 150000), ["Dish Soap", "Laundry Detergent", "Trash Bags", "Paper Towels", "Batteries AA",
                                           "Light Bulb", "Sponges", "Air Freshener", "Insect Spray", "Aluminium Foil"]),
    "Frozen": (800, (15000, 120000), ["Ice Cream Cone", "Frozen Dumplings", "Ice Cream Tub", "Frozen Pizza",
                                       "Popsicle", "Frozen Fries", "Frozen Shrimp", "Fish Balls", "Chicken Nuggets", "Mochi Ice"]),
}
BRANDS = ["Sunrise", "Blue Lotus", "Golden Bay", "Mekong", "Northwind", "Red River", "Tropica", "Highland",
          "Pearl", "Summit", "Harbor", "Jade", "Lucky Star", "Green Valley", "Oceanic", "Saigon Select"]
SIZES = ["Small", "Regular", "Large", "Family", "Mini", "Twin Pack", "6-Pack", "Value"]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def check_digit(body):
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def ean13(rng, used):
    while True:
        body = "893" + "".join(rng.choice("0123456789") for _ in range(9))
        code = body + check_digit(body)
        if code not in used:
            used.add(code)
            return code


def upca(rng, used):
    while True:
        body = "0" + "".join(rng.choice("0123456789") for _ in range(10))
        code = body + check_digit(body)
        if "0" + code not in used:
            used.add("0" + code)
            return code


def ean8(rng, used):
    while True:
        body = "95" + "".join(rng.choice("0123456789") for _ in range(5))
        code = body + check_digit(body)
        if code not in used:
            used.add(code)
            return code


WEIGHED = [
    ("Bananas (per kg)", 29900), ("Red Apples (per kg)", 59900), ("Tomatoes (per kg)", 34900),
    ("Carrots (per kg)", 19900), ("Mandarins (per kg)", 45900), ("Potatoes (per kg)", 24900),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=1200)
    ap.add_argument("--out", default="configs/catalog.example.json")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    used, names, items, stock = set(), set(), [], {}
    cats = list(CATEGORIES)
    n = misses = 0
    while len(items) < a.count:
        cat = cats[n % len(cats)]
        n += 1
        tax, (lo, hi), products = CATEGORIES[cat]
        name = f"{rng.choice(BRANDS)} {rng.choice(products)} {rng.choice(SIZES)}"
        if name in names:
            # Past the brands x products x sizes there are (a big store's 50,000 SKUs), a
            # variant number keeps names unique.
            misses += 1
            if misses < 100:
                continue
            name = f"{name} No. {len(items) + 1}"
        misses = 0
        names.add(name)
        sku = f"SKU{len(items) + 1:05d}"
        kind = rng.random()
        codes = [ean13(rng, used)] if kind < 0.8 else [upca(rng, used)] if kind < 0.93 else [ean8(rng, used)]
        if rng.random() < 0.1:
            codes.append(ean13(rng, used))
        price = rng.randrange(lo, hi, 500)
        items.append({
            "sku": sku, "name": name, "category": cat, "tax_rate_bp": tax, "base_price": price,
            "barcodes": codes, "active": rng.random() > 0.01, "low_stock_threshold": rng.choice([0, 5, 10, 20]),
        })
        stock[sku] = rng.randrange(0, 200)
    # The first SKUs are the demo products used in README and tests: always active and stocked.
    for it in items[:10]:
        it["active"] = True
        stock[it["sku"]] = 100
    prices = []
    for it in rng.sample(items[10:], 40):
        prices.append({"sku": it["sku"], "price": it["base_price"] + 1000,
                       "effective_from_ms": START_MS + rng.randrange(0, 300) * 86_400_000, "scope": "chain"})
    by_cat = lambda c: [i["sku"] for i in items if i["category"] == c]
    promotions = [
        {"id": "P-SNACK10", "name": "10% off snacks", "type": "percentage", "bp": 1000, "categories": ["Snacks"]},
        {"id": "P-B2G1-BEV", "name": "Buy 2 get 1 beverages", "type": "buy_x_get_y", "buy": 2, "get": 1,
         "skus": by_cat("Beverages")[:30]},
        {"id": "P-DAIRY-2K", "name": "2,000 off dairy", "type": "fixed_amount", "amount": 2000, "categories": ["Dairy"]},
        {"id": "P-BIG-BASKET", "name": "5% off baskets over 200,000", "type": "percentage", "bp": 500,
         "min_basket": 200000},
    ]
    # Produce sold by weight: the price is per kilogram, stock and thresholds count grams, and
    # the barcodes are in-store codes (prefix 20) printed on the shelf label or the scale's
    # PLU sheet.
    for i, (name, per_kg) in enumerate(WEIGHED, start=1):
        body = f"20{i:010d}"
        sku = f"W{i:04d}"
        items.append({
            "sku": sku, "name": name, "category": "Produce", "tax_rate_bp": 500, "base_price": per_kg,
            "barcodes": [body + check_digit(body)], "active": True, "low_stock_threshold": 5000,
            "sold_by_weight": True,
        })
        stock[sku] = 80_000
    out = {"version": 1, "items": items, "prices": prices, "promotions": promotions, "opening_stock": stock}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}: {len(items)} items, {len(prices)} scheduled prices, {len(promotions)} promotions")


if __name__ == "__main__":
    main()
