"""Text of the built-in customer-service corpus (banking support), written for this project.

Layout:

* ``GROUPS``: resolution groups in action order, each with the short label the agent says.
* ``TOPICS``: which groups a vague opening ("a problem with my card") can stand for.
* ``INTENTS``: ``intent -> (group, train templates, test templates)``. Templates hold slots
  such as ``{amount}`` filled from ``SLOTS``. Train and test templates are different
  phrasings, not different fillings of one phrasing.
* ``VAGUE``: ``topic -> (train templates, test templates)`` for vague openings.
* ``OPENERS`` / ``CLOSERS``: ``split -> [(phrase, (p_calm, p_frustrated, p_angry)), ...]``;
  mood shows only through these phrases. Each probability column sums to 1.
* ``REPLIES``: short customer replies that do not depend on the intent.

Intent and group names are identifiers with underscores; no utterance contains an underscore,
so a name never appears verbatim in the text.
"""

from __future__ import annotations

GROUPS: tuple[tuple[str, str], ...] = (
    ("card_delivery", "card delivery"),
    ("card_problems", "faulty card"),
    ("card_security", "card security"),
    ("card_payments", "card payment"),
    ("cash_withdrawal", "cash withdrawal"),
    ("money_transfers", "transfer"),
    ("top_up", "top-up"),
    ("currency_exchange", "currency exchange"),
    ("identity_verification", "identity check"),
    ("account_admin", "account settings"),
    ("refunds_charges", "refund and charges"),
)

TOPICS: dict[str, tuple[str, ...]] = {
    "card": ("card_delivery", "card_problems", "card_security", "card_payments"),
    "money": (
        "cash_withdrawal", "money_transfers", "top_up", "currency_exchange", "refunds_charges",
    ),
    "account": ("identity_verification", "account_admin"),
}

SLOTS: dict[str, tuple[str, ...]] = {
    "amount": ("20 pounds", "35 pounds", "50 pounds", "120 pounds", "15 euros", "80 euros",
               "40 dollars", "250 dollars", "9.99", "1,000 pounds"),
    "merchant": ("Amazon", "Tesco", "Uber", "Netflix", "Zara", "Ryanair", "Deliveroo", "IKEA",
                 "Spotify", "eBay"),
    "card": ("debit", "Visa", "Mastercard", "new", "replacement", "premium", "metal", "joint"),
    "date": ("yesterday", "last week", "on Monday", "three days ago", "on the 3rd",
             "this morning", "two weeks ago", "last Friday"),
    "currency": ("euros", "US dollars", "yen", "Swiss francs", "zloty", "Australian dollars",
                 "Swedish krona", "Mexican pesos"),
    "country": ("Spain", "France", "Germany", "Italy", "Portugal", "Poland", "Ireland",
                "the Netherlands"),
}

INTENTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # card_delivery
    "card_not_arrived": ("card_delivery", (
        "My {card} card still hasn't arrived and I ordered it {date}.",
        "I've been waiting for my {card} card since {date}, where is it?",
        "The card you sent me never arrived in the post.",
        "I ordered a {card} card {date} and it's still not here.",
        "Still no sign of the card I requested, can you check where it is?",
    ), (
        "It's been ages since {date} and there's still nothing in my mailbox from you.",
        "Nothing has shown up at my address since I requested a {card} card {date}.",
    )),
    "card_delivery_time": ("card_delivery", (
        "How long does delivery of a {card} card take?",
        "When will my {card} card be delivered if I order it today?",
        "What's the usual delivery time for a new card to {country}?",
        "How many days does it take to get a new {card} card?",
        "Can you tell me when a card ordered now would reach {country}?",
    ), (
        "Roughly how many days until a {card} card reaches me in {country}?",
        "If I request a card now, when should I expect it to land?",
    )),
    "activate_card": ("card_delivery", (
        "How do I activate the {card} card I received {date}?",
        "My new card came {date} but I can't activate it.",
        "Where in the app do I activate my {card} card?",
        "I just received my {card} card, how do I start using it?",
        "What's the process to turn on a new card?",
    ), (
        "The {card} card showed up {date}; what do I do to switch it on?",
        "I got the {card} card {date}, how do I get it ready to use?",
    )),
    "card_expiring": ("card_delivery", (
        "My {card} card is about to expire, will you send a new one?",
        "My card expires next month, do I need to order a replacement?",
        "What happens when my {card} card expires?",
        "The expiry date on my {card} card is coming up, what should I do?",
        "Will I get a new card automatically before the old one runs out?",
    ), (
        "The date printed on my {card} card runs out soon, is a fresh one coming automatically?",
        "My {card} card is nearly out of date, how do I get the next one?",
    )),
    # card_problems
    "card_not_working": ("card_problems", (
        "My {card} card is not working anywhere.",
        "My card stopped working {date}.",
        "The {card} card you gave me doesn't work at all.",
        "My {card} card got refused at every shop today, is it broken?",
        "Nothing works with my card since {date}, not even online.",
    ), (
        "Every time I try my {card} card it just fails, ever since {date}.",
        "The chip seems dead, nothing goes through at {merchant}.",
    )),
    "contactless_failing": ("card_problems", (
        "Contactless is not working on my {card} card.",
        "Tapping my card at {merchant} doesn't work.",
        "Why won't contactless work on my card?",
        "I can only pay with chip and PIN, contactless fails every time.",
        "The reader at {merchant} won't accept my card when I tap it.",
    ), (
        "When I wave the {card} card over the reader at {merchant} nothing happens.",
        "The tap-to-pay feature refuses to go through at {merchant}.",
    )),
    "card_swallowed": ("card_problems", (
        "The ATM swallowed my {card} card {date}.",
        "A cash machine kept my card and didn't give it back.",
        "My card got stuck in the ATM {date}.",
        "The cash machine didn't return my {card} card {date}.",
        "An ATM in {country} took my card and it never came out.",
    ), (
        "The machine in {country} ate my {card} card and never returned it.",
        "The cash point held on to my {card} card {date}.",
    )),
    "virtual_card_problem": ("card_problems", (
        "My virtual card doesn't work when I shop online at {merchant}.",
        "How do I create a virtual card in the app?",
        "The virtual card number gets rejected on {merchant}.",
        "Can I get a card I only use for online payments?",
        "The online card in my app keeps failing at {merchant}.",
    ), (
        "The digital-only card number fails at checkout on {merchant}.",
        "I want a card that exists only on my phone for online shopping, how?",
    )),
    # card_security
    "card_lost": ("card_security", (
        "I lost my {card} card {date}.",
        "I can't find my card anywhere, I think I lost it.",
        "My {card} card is lost, please help.",
        "I have no idea where my {card} card is, I must have dropped it.",
        "My card has gone missing, can you block it?",
    ), (
        "I've misplaced my {card} card and have no idea where it went since {date}.",
        "My wallet went missing {date} with everything in it.",
    )),
    "card_stolen": ("card_security", (
        "My {card} card was stolen {date}.",
        "Someone stole my bag with my card in it.",
        "I think my card was stolen in {country}.",
        "My wallet was taken {date} with my {card} card inside.",
        "Somebody took my card, I need to stop it before they use it.",
    ), (
        "A thief took my purse {date} and my {card} card was inside.",
        "I was pickpocketed in {country} and they got away with my cards.",
    )),
    "pin_blocked": ("card_security", (
        "My PIN is blocked after too many attempts.",
        "I entered the wrong PIN three times and now it's blocked.",
        "How do I unblock my PIN?",
        "I typed my PIN wrong too many times and my card is locked.",
        "The ATM says my PIN is locked, what now?",
    ), (
        "After guessing the code wrongly a few times the machine locked me out.",
        "My secret number got locked at {merchant}, how do I reset it?",
    )),
    "change_pin": ("card_security", (
        "How can I change my PIN?",
        "I want to set a new PIN for my {card} card.",
        "Where do I change the PIN on my card?",
        "Can I pick a different PIN?",
        "I'd like to update the PIN for my {card} card.",
    ), (
        "I'd like to pick a different four-digit code for my {card} card.",
        "Can I swap the number I type at the till for a new one?",
    )),
    # card_payments
    "payment_declined": ("card_payments", (
        "My card payment at {merchant} was declined {date}.",
        "Why was my payment of {amount} declined?",
        "My {card} card keeps getting declined at {merchant}.",
        "I couldn't pay {amount} at {merchant} {date}, the card was refused.",
        "Why does my card get refused when I try to buy something?",
    ), (
        "The till at {merchant} refused my {amount} purchase {date}.",
        "{merchant} said my {card} card was rejected when I tried to pay {amount}.",
    )),
    "payment_pending": ("card_payments", (
        "My payment of {amount} to {merchant} is still pending.",
        "Why is my card payment showing as pending since {date}?",
        "A purchase at {merchant} has been pending for days.",
        "The {amount} purchase at {merchant} hasn't gone through yet.",
        "How long until a pending card payment clears?",
    ), (
        "The {amount} I spent at {merchant} {date} hasn't gone through yet, it's stuck in limbo.",
        "My shopping at {merchant} still hasn't settled, it's been hanging since {date}.",
    )),
    "payment_unrecognised": ("card_payments", (
        "There's a card payment of {amount} I don't recognise.",
        "I see a payment to {merchant} that I didn't make.",
        "I don't recognise a {amount} payment from {date}.",
        "I never bought anything from {merchant} but there's a payment of {amount}.",
        "There's a purchase on my card I didn't authorise.",
    ), (
        "Who is {merchant}? They took {amount} and I've never shopped there.",
        "My statement lists {amount} at {merchant} and it wasn't me.",
    )),
    "payment_wrong_rate": ("card_payments", (
        "I was charged the wrong exchange rate on a card payment in {country}.",
        "My payment of {amount} at {merchant} used a bad exchange rate.",
        "The exchange rate on my card payment in {currency} is wrong.",
        "I paid {amount} at {merchant} abroad and the rate you used is too high.",
        "The conversion on a purchase I made in {country} was not right.",
    ), (
        "Paying in {currency} at {merchant} cost me far more than the official conversion.",
        "The conversion on my purchase abroad in {country} looks off.",
    )),
    # cash_withdrawal
    "cash_declined": ("cash_withdrawal", (
        "My cash withdrawal was declined at the ATM.",
        "The ATM declined my card when I tried to withdraw {amount}.",
        "Why can't I withdraw cash {date}?",
        "I couldn't get cash out in {country}, the machine said no.",
        "Why won't the ATM let me take out {amount}?",
    ), (
        "The cash machine refused to give me {amount} {date}.",
        "I tried to take out money in {country} and got turned down.",
    )),
    "wrong_cash_amount": ("cash_withdrawal", (
        "The ATM gave me less cash than I asked for.",
        "I withdrew {amount} but received the wrong amount of cash.",
        "The cash machine only gave me part of my {amount}.",
        "I only got part of the money I withdrew {date}.",
        "The machine gave me fewer notes than I requested.",
    ), (
        "I asked for {amount} and the machine dispensed fewer notes.",
        "I'm short on the banknotes I got out {date}.",
    )),
    "withdrawal_fee": ("cash_withdrawal", (
        "Why was I charged a fee for my cash withdrawal?",
        "There's a fee on my ATM withdrawal of {amount}.",
        "How much does it cost to withdraw cash?",
        "I got charged extra for taking cash out in {country}.",
        "Do you charge for ATM withdrawals?",
    ), (
        "Taking out {amount} at a machine in {country} cost me extra, why?",
        "Is there a charge when I get notes out of a machine?",
    )),
    "withdrawal_pending": ("cash_withdrawal", (
        "My cash withdrawal from {date} is still pending.",
        "An ATM withdrawal of {amount} shows as pending.",
        "Why is my cash withdrawal not complete yet?",
        "The cash I took out {date} is still showing as not complete.",
        "Why hasn't my ATM withdrawal of {amount} gone through yet?",
    ), (
        "The {amount} I took out of a machine {date} is still waiting to clear.",
        "Money I got from a machine hasn't settled in the app.",
    )),
    # transfers
    "transfer_not_received": ("money_transfers", (
        "My transfer of {amount} hasn't arrived for the recipient.",
        "I sent money {date} but my friend never received the transfer.",
        "The recipient says my bank transfer didn't arrive.",
        "I paid my friend {amount} by transfer {date} and they haven't got it.",
        "The money I sent never reached the other account.",
    ), (
        "I sent {amount} to my landlord {date} and he still hasn't got it.",
        "My sister is still waiting for the {amount} I wired her.",
    )),
    "cancel_transfer": ("money_transfers", (
        "How do I cancel a transfer I just made?",
        "I want to cancel my transfer of {amount}.",
        "Can I cancel a bank transfer sent {date}?",
        "I sent money to the wrong account, can I reverse the transfer?",
        "Can you stop a payment I sent to someone {date}?",
    ), (
        "I wired {amount} to the wrong person, can I stop it?",
        "Please pull back the money I sent {date}, I made a mistake.",
    )),
    "transfer_declined": ("money_transfers", (
        "My transfer of {amount} was declined.",
        "Why did my bank transfer fail {date}?",
        "The app says my transfer was declined.",
        "I can't send money to my friend, the transfer keeps failing.",
        "Why won't the app let me send {amount}?",
    ), (
        "I tried to send {amount} to a friend and the app refused.",
        "Sending money to my brother {date} just bounced back with an error.",
    )),
    "transfer_fee": ("money_transfers", (
        "Why was I charged a fee for my transfer?",
        "There's a transfer fee of {amount} on my account.",
        "How much do transfers cost?",
        "Do you charge for sending money to another bank?",
        "I was charged {amount} for sending money, why?",
    ), (
        "Sending money to {country} cost me {amount} extra, why?",
        "What do you take for wiring money to another account?",
    )),
    # top_up
    "top_up_failed": ("top_up", (
        "My top-up failed {date}.",
        "I tried to top up {amount} but it failed.",
        "Why did my top up not work?",
        "I couldn't add money to my account {date}.",
        "Adding funds with my {card} card failed.",
    ), (
        "Adding {amount} to my balance with my {card} card didn't go through.",
        "I tried to load money into the app {date} and got an error.",
    )),
    "top_up_pending": ("top_up", (
        "My top-up of {amount} is still pending.",
        "I topped up {date} but it's still pending.",
        "How long does a pending top up take?",
        "The money I added {date} hasn't shown up in my balance.",
        "My top up of {amount} is taking forever.",
    ), (
        "The {amount} I loaded {date} hasn't reached my balance yet.",
        "Money I added to the app is stuck waiting.",
    )),
    "top_up_limits": ("top_up", (
        "What is the maximum I can top up?",
        "Is there a limit on top-ups?",
        "Can I top up {amount} at once?",
        "How much money can I add to my account at a time?",
        "Is {amount} too much to add in one go?",
    ), (
        "How much money am I allowed to load into my balance per day?",
        "Can I add {amount} to the app in one go or is that too much?",
    )),
    "auto_top_up": ("top_up", (
        "How do I set up automatic top-up?",
        "I want auto top up when my balance is low.",
        "Can I turn off automatic top-ups?",
        "Can my balance be refilled automatically?",
        "How do I stop automatic top ups?",
    ), (
        "Can the app refill my balance by itself when it drops under {amount}?",
        "I'd like my money to be reloaded without me doing anything.",
    )),
    # currency_exchange
    "exchange_rate_query": ("currency_exchange", (
        "What exchange rate do you use for {currency}?",
        "What's your exchange rate today for {currency}?",
        "How do you calculate exchange rates?",
        "What rate will I get if I convert {amount} to {currency}?",
        "Where can I see your current rate for {currency}?",
    ), (
        "How many {currency} would I get for {amount}?",
        "What conversion do you apply between pounds and {currency}?",
    )),
    "exchange_in_app": ("currency_exchange", (
        "How do I exchange money to {currency} in the app?",
        "Can I exchange {amount} into {currency}?",
        "Where do I exchange currency in the app?",
        "How do I convert pounds to {currency} in the app?",
        "I want to change {amount} into {currency}.",
    ), (
        "I'd like to swap {amount} into {currency} using my phone.",
        "How can I convert my balance to {currency} myself?",
    )),
    "currency_support": ("currency_exchange", (
        "Do you support {currency}?",
        "Which currencies can I hold in my account?",
        "Can I keep money in {currency} as a currency?",
        "Can I hold {currency} in my account?",
        "What currencies can I keep my balance in?",
    ), (
        "Can my balance be held in {currency} or only pounds?",
        "Is {currency} one of the options for storing money?",
    )),
    "exchange_fee": ("currency_exchange", (
        "Is there a fee for exchanging currency?",
        "Why was I charged for exchanging {amount} to {currency}?",
        "How much do you charge to exchange money?",
        "Do you charge anything to convert {amount} into {currency}?",
        "I was charged when I changed money into {currency}, why?",
    ), (
        "Converting {amount} into {currency} took a cut, why?",
        "What do you take for swapping pounds into {currency}?",
    )),
    # identity_verification
    "verify_identity_how": ("identity_verification", (
        "How do I verify my identity?",
        "What do I need to verify my identity?",
        "Where do I verify my identity in the app?",
        "What documents do I need to confirm my identity?",
        "How do I prove who I am to you?",
    ), (
        "What documents prove who I am for you?",
        "I need to show you it's really me, how does that work?",
    )),
    "verification_failed": ("identity_verification", (
        "My identity verification failed.",
        "I can't verify my identity, the app keeps rejecting it.",
        "Why did my identity check fail {date}?",
        "The app rejected my ID photo again {date}.",
        "I keep failing the identity check.",
    ), (
        "My passport photo keeps getting refused when I prove who I am.",
        "The selfie and ID upload bounced back again {date}.",
    )),
    "why_verify": ("identity_verification", (
        "Why do I need to verify my identity?",
        "Why are you asking me to verify my identity?",
        "Why is identity verification required?",
        "Why do you need my passport or ID?",
        "Why do I have to confirm who I am?",
    ), (
        "What's the point of sending you my passport?",
        "Why must I prove who I am just to use the app?",
    )),
    "source_of_funds": ("identity_verification", (
        "Why do you need to know the source of my funds?",
        "You asked me to verify the source of funds for {amount}.",
        "How do I prove the source of my funds?",
        "Why are you asking where my money came from?",
        "What do I send to show where the {amount} came from?",
    ), (
        "You want to know where the {amount} came from, why?",
        "How do I show you where my money originates?",
    )),
    # account_admin
    "edit_details": ("account_admin", (
        "How do I change my address in my account?",
        "I need to update my personal details.",
        "I want to change the name on my account.",
        "I moved, how do I update my address?",
        "My phone number changed, where do I update my details?",
    ), (
        "I moved house {date}, where do I put the new street?",
        "My surname changed after the wedding, how do I fix it in the profile?",
    )),
    "close_account": ("account_admin", (
        "I want to close my account.",
        "How do I close my account?",
        "Please delete my account.",
        "I'd like to cancel my account.",
        "Can you close my account and send me the balance?",
    ), (
        "I'm done with this app, shut everything down for me.",
        "How do I stop being your customer for good?",
    )),
    "country_support": ("account_admin", (
        "Is the account available in {country}?",
        "Can I open an account if I live in {country}?",
        "Which countries do you support?",
        "Does the app work if I move to {country}?",
        "Can people in {country} open an account?",
    ), (
        "I'm moving to {country}, will the app still work for me there?",
        "Do residents of {country} qualify to sign up?",
    )),
    "age_limit": ("account_admin", (
        "What is the minimum age to open an account?",
        "Can my child open an account?",
        "Is there an age limit for an account?",
        "How old do you have to be to get an account?",
        "Can a teenager sign up?",
    ), (
        "My 15-year-old wants to sign up, is that allowed?",
        "How old must someone be to join?",
    )),
    # refunds_charges
    "request_refund": ("refunds_charges", (
        "I want a refund for my purchase at {merchant}.",
        "How do I request a refund for {amount}?",
        "Can I get my money back from {merchant}?",
        "I returned an order to {merchant}, how do I get a refund?",
        "Can I have the {amount} from {merchant} refunded?",
    ), (
        "{merchant} agreed to return my {amount}, how do I get it?",
        "I sent the item back to {merchant}, how is the money returned?",
    )),
    "refund_missing": ("refunds_charges", (
        "My refund from {merchant} isn't showing up.",
        "I was promised a refund {date} but it hasn't appeared.",
        "Where is my refund of {amount}?",
        "{merchant} said they refunded me {amount} {date} but I can't see it.",
        "My refund still isn't in my account.",
    ), (
        "{merchant} says they paid me back {amount} but my balance disagrees.",
        "The money {merchant} returned {date} is nowhere to be seen.",
    )),
    "charged_twice": ("refunds_charges", (
        "I was charged twice for the same payment at {merchant}.",
        "There's a duplicate charge of {amount} on my account.",
        "{merchant} took the money twice.",
        "I paid once at {merchant} but got charged two times.",
        "The same payment of {amount} came out twice {date}.",
    ), (
        "I see {amount} taken by {merchant} two times for one order.",
        "My order at {merchant} {date} was billed double.",
    )),
    "extra_charge": ("refunds_charges", (
        "There's an extra charge on my statement.",
        "Why is there an unexpected charge of {amount} on my statement?",
        "I have an extra fee on my statement from {date}.",
        "I see a charge of {amount} I don't understand.",
        "Why was {amount} taken from my account {date}?",
    ), (
        "Some mystery deduction of {amount} appeared in my history.",
        "My balance dropped by {amount} {date} for no reason I can see.",
    )),
}

VAGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "card": ((
        "There's a problem with my card.",
        "Something is wrong with my {card} card.",
        "I need help with my card.",
        "I have an issue with my card, can you help?",
    ), (
        "My {card} card is giving me trouble.",
        "Something's up with my plastic.",
    )),
    "money": ((
        "I have a problem with my money.",
        "Something is wrong with my balance.",
        "There's an issue with {amount} on my account.",
        "I need help with a transaction.",
    ), (
        "My funds are acting strange.",
        "I'm worried about {amount} I can't account for.",
    )),
    "account": ((
        "I need help with my account.",
        "There's a problem with my account.",
        "I have a question about my profile.",
    ), (
        "Something about my membership needs sorting.",
        "I'm having trouble with my account settings.",
    )),
    "general": ((
        "I have a problem, can you help?",
        "I need some help please.",
        "Something isn't right.",
    ), (
        "Could you help me with something?",
        "I've got an issue.",
    )),
}

OPENERS: dict[str, tuple[tuple[str, tuple[float, float, float]], ...]] = {
    "train": (
        ("", (0.45, 0.25, 0.0)),
        ("Hi.", (0.2, 0.05, 0.0)),
        ("Hello,", (0.15, 0.0, 0.0)),
        ("Good morning.", (0.1, 0.0, 0.0)),
        ("Hi there, hope you're well.", (0.1, 0.0, 0.0)),
        ("Honestly,", (0.0, 0.2, 0.05)),
        ("I'm getting fed up.", (0.0, 0.2, 0.1)),
        ("This is the second time I'm asking.", (0.0, 0.15, 0.1)),
        ("Not again.", (0.0, 0.15, 0.05)),
        ("This is ridiculous!", (0.0, 0.0, 0.25)),
        ("I am absolutely furious.", (0.0, 0.0, 0.2)),
        ("Unbelievable!", (0.0, 0.0, 0.25)),
    ),
    "test": (
        ("", (0.5, 0.3, 0.0)),
        ("Hey.", (0.25, 0.05, 0.0)),
        ("Morning!", (0.25, 0.0, 0.0)),
        ("Seriously,", (0.0, 0.35, 0.1)),
        ("I'm running out of patience.", (0.0, 0.3, 0.15)),
        ("What a joke.", (0.0, 0.0, 0.35)),
        ("I'm fuming.", (0.0, 0.0, 0.4)),
    ),
}

CLOSERS: dict[str, tuple[tuple[str, tuple[float, float, float]], ...]] = {
    "train": (
        ("", (0.4, 0.3, 0.1)),
        ("Thanks.", (0.3, 0.0, 0.0)),
        ("Thank you in advance.", (0.2, 0.0, 0.0)),
        ("Cheers.", (0.1, 0.0, 0.0)),
        ("Please sort it out.", (0.0, 0.4, 0.1)),
        ("I'd like this fixed today.", (0.0, 0.3, 0.1)),
        ("Fix it now!", (0.0, 0.0, 0.35)),
        ("Worst service ever.", (0.0, 0.0, 0.2)),
        ("I want answers!", (0.0, 0.0, 0.15)),
    ),
    "test": (
        ("", (0.45, 0.35, 0.1)),
        ("Many thanks.", (0.3, 0.0, 0.0)),
        ("Appreciate it.", (0.25, 0.0, 0.0)),
        ("Can this be handled quickly?", (0.0, 0.4, 0.0)),
        ("I expect a fix.", (0.0, 0.25, 0.2)),
        ("Sort it out immediately!", (0.0, 0.0, 0.4)),
        ("Disgraceful.", (0.0, 0.0, 0.3)),
    ),
}

REPLIES: dict[str, tuple[str, ...]] = {
    "complaint": (
        "That's not what I asked about.",
        "No, that isn't my problem at all.",
        "You've misunderstood me.",
        "That doesn't help with my issue.",
    ),
    "ack": ("Okay.", "Alright.", "Fine, go on.", "I see."),
    "leave": (
        "Forget it, I'm taking my business elsewhere.",
        "I've had enough, goodbye.",
        "I don't have time for this.",
    ),
    "thanks": ("Great, that sorts it out.", "Perfect, that's what I needed.", "That fixes it."),
    "handoff": ("Okay, I'll talk to the specialist.", "Fine, put me through."),
}

#: What the agent says for the non-resolving actions; a resolution says ``RESOLVE_PHRASE``.
AGENT_PHRASES: dict[str, str] = {
    "ask_clarify": "Could you tell me a bit more about the problem?",
    "apologise": "I'm really sorry about the trouble.",
    "escalate": "Let me pass you to a specialist colleague.",
}
RESOLVE_PHRASE: str = "I'll handle this as a {label} request now."
