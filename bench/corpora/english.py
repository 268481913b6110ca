"""The English language pack: task wording, constraints, systems, refusals, PII templates.
Hand-written for this project; nothing here is copied from any corpus."""

from __future__ import annotations

from bench.corpora.banks import Language
from bench.corpora.english_topics import ENGLISH_TOPICS

ENGLISH = Language(
    code="en",
    joiner=" ",
    stop=".",
    topics=ENGLISH_TOPICS,
    numerals=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    word_limits=(40, 50, 60, 80, 100),
    task_weights=(
        ("explain", 0.44),
        ("steps", 0.10),
        ("compare", 0.06),
        ("summarize", 0.07),
        ("grammar", 0.04),
        ("sentiment", 0.04),
        ("titles", 0.04),
        ("email", 0.06),
        ("story", 0.05),
        ("code", 0.06),
        ("explain_code", 0.04),
    ),
    constraints=(
        ("Answer in {n} bullet points.", "bullets"),
        ("Use {n} bullet points.", "bullets"),
        ("List {n} key points.", "bullets"),
        ("Keep it under {w} words.", "words"),
        ("Please keep the answer under {w} words.", "words"),
        ("Answer in fewer than {w} words.", "words"),
        ("Answer in one sentence.", "sentences1"),
        ("Use exactly two sentences.", "sentences2"),
        ("Please reply in three sentences.", "sentences3"),
        ("Use a numbered list.", "numbered"),
        ("Present the answer as a numbered list.", "numbered"),
        ("Use simple language.", "style"),
        ("Keep the tone friendly.", "style"),
        ("Avoid technical jargon.", "style"),
        ("Be concise.", "style"),
        ("Explain it {audience}.", "style"),
    ),
    prefixes="Hi!|Hello,|Quick question:|Can you help me?|Hey,|Please help:|Good morning!",
    personas="I'm a complete beginner.|I'm a college student.|I work full time and have little "
    "free time.|I'm a retired teacher.|I'm preparing for an exam next week.|I'm new to this "
    "topic.|I'm a parent of two young kids.|My friend asked me about this and I didn't know what "
    "to say.|I'm trying to learn something new this year.|I run a small business.",
    audiences="to a complete beginner|to a ten-year-old|in plain English|to a busy "
    "professional|to a first-year student|to my grandmother|to someone with no background in "
    "the field|in simple terms|to a curious teenager|for a general audience",
    generic_asks="Tell me something interesting about {subject}.|Write a short paragraph about "
    "{subject}.|What should a beginner know about {subject}?|Share some useful advice about "
    "{subject} {context}.|Why do so many people find {subject} difficult?|What are a few "
    "common mistakes related to {subject}?|I'd like to learn more about {subject}. Where "
    "should I start?",
    step_asks="Give me a step-by-step plan for {subject}.|What steps should I follow for "
    "{subject} {context}?|Break {subject} down into simple steps for me.|Walk me through "
    "{subject} step by step.|Outline the steps involved in {subject}.",
    compare_asks="What is the difference between {s1} and {s2}?|Compare {s1} and {s2} "
    "{audience}.|Which is better for a beginner: {s1} or {s2}?|How does {s1} compare to {s2}?|"
    "Should I focus on {s1} or {s2} first?",
    action_templates="Try to {a}.|It helps to {a}.|Make sure to {a}; it gives you {b}.|For "
    "best results, {a}.|Most {p} would tell you to {a}.|A simple habit is to {a}.|You will get "
    "{b} if you {a}.|Whenever possible, {a}.|It is worth taking the time to {a}.|Don't forget "
    "to {a}.|One useful trick is to {a}, which leads to {b}.|If you {a}, you will notice {b} "
    "quite quickly.|First, {a}.|Another good idea is to {a}.|In my experience, it pays to {a}.|"
    "{a}, and you will usually end up with {b}.|Remember to {a} so that you get {b}.",
    mistake_templates="Avoid {m}, which {c}.|A common mistake is {m}; it {c}.|Many beginners "
    "end up {m}, and that {c}.|Try not to fall into the habit of {m}.|Be careful about {m}, "
    "because it {c}.|{m} is tempting, but it {c}.|One thing to watch out for is {m}.",
    consequences="often leads to disappointing results|wastes time you could spend on "
    "something else|makes the whole process harder than it needs to be|can undo a lot of your "
    "earlier work|is one of the main reasons people give up|usually causes more problems than "
    "it solves",
    tool_templates="{t} can make a big difference here.|If you have {t}, use it.|It is worth "
    "investing in {t}.|{t} is not essential, but it makes things easier.|Many {p} swear by {t}.|"
    "Having {t} at hand saves a lot of time.",
    point_templates="{a}.|{a}.|{a}.|{a} to get {b}.|Avoid {m}.|Use {t} if you have one.|{a}, "
    "which leads to {b}.|Don't skip this one: {a}.|Watch out for {m}.",
    openers="{S} is easier than it looks once you understand the basics.|When it comes to {s}, "
    "the basics matter more than clever tricks.|There are a few things worth knowing about "
    "{s}.|Good question! {S} comes up a lot.|Sure, here is a short overview of {s}.|{S} can "
    "feel overwhelming at first, but it does not have to be.|Great question. Let me break {s} "
    "down for you.|Many people are curious about {s}, and for good reason.",
    closers="With a bit of practice, it quickly becomes second nature.|Take it one step at a "
    "time and you will see progress.|I hope this helps, and good luck!|Feel free to ask if you "
    "want more detail on any of these points.|Above all, be patient with yourself.|Small "
    "improvements add up faster than you might expect.|Most importantly, enjoy the process.",
    list_intros="Here are a few points to keep in mind:|Sure! Here is a quick summary:|Here is "
    "what I would suggest:|These are the key points:|A few ideas to get you started:",
    step_intros="Here is a simple plan:|Sure! Try these steps:|You can follow these steps:|Here "
    "is one way to approach it:|Follow this order and you will be fine:",
    step_counts="Give me {n} steps.|Keep it to {n} steps.|Use exactly {n} steps.",
    step_benefits="This gives you {b}.|That way you get {b}.|It leads to {b}.",
    systems="You are a helpful assistant.|You are a friendly and knowledgeable assistant who "
    "specializes in {label}.|You are an expert in {label}. Give clear, practical answers.|Answer "
    "the user's questions accurately and concisely.|You are a patient tutor. Explain things "
    "step by step.|You are a helpful assistant. Keep your answers short and friendly.",
    follow_ups="Thanks!|That helps.|Great, one more question.|OK.|Thanks, that was useful.",
    summarize_asks="Summarize the following text in one sentence.|Give me a short summary of "
    "this paragraph.|What is the main idea of the text below?|Summarize this for a busy "
    "reader.|Can you sum up the following passage?|Summarize this paragraph about {subject} in "
    "one sentence.|Read the text below on {subject} and tell me its main point.|Here is a "
    "short note about {subject}. Can you summarize it?|I found this advice about {subject} "
    "online. What does it boil down to?",
    summary_templates="The text recommends that you {a1} and {a2}, which leads to {b}.|In "
    "short: {a1} and {a2} if you want {b}.|The main idea is that {p} {a1} and {a2} to get {b}.|"
    "The passage argues that it pays to {a1} and to {a2}.",
    compare_openers="{S1} and {s2} have a lot in common, but they are not the same thing.|Both "
    "{s1} and {s2} are worth understanding, and they suit different situations.|This is a "
    "common question, because {s1} and {s2} are often mentioned together.|The short answer is "
    "that it depends on what you want to achieve.",
    compare_middles="{S1} tends to reward people who {a1}, while {s2} is easier if you {a2}.|"
    "With {s1}, the main risk is {m}.|If your goal is to {a1}, {s1} is probably the better "
    "place to start.|{S1} usually asks for more patience, whereas {s2} gives you results a "
    "little sooner.",
    compare_closers="In the end, the right choice depends on your goals and how much time you "
    "have.|Many people try both and then settle on the one that fits their routine.|If you are "
    "unsure, start with whichever one feels more interesting to you.",
    title_asks="Suggest {n} catchy titles for a blog post about {subject}.|Give me {n} title "
    "ideas for an article about {subject}.|Come up with {n} headlines for a newsletter about "
    "{subject}.",
    title_templates="A Beginner's Guide to {S}|{k} Things Nobody Tells You About {S}|Why {S} Is "
    "Easier Than You Think|The Simple Truth About {S}|{S}: Common Mistakes and How to Avoid "
    "Them|Everything I Wish I Had Known About {S}|{S} in {k} Simple Steps|How to Get Better at "
    "{S} This Year|Stop Overthinking {S}|The Lazy Person's Approach to {S}",
    title_intros="Here are a few ideas:|Sure! Some options:|How about these?",
    sentiment_asks="Classify the sentiment of this review as positive or negative.|Is the "
    "following review positive or negative?|Determine whether the customer who wrote this "
    "review is happy or unhappy.|What is the sentiment of this product review?|Is this review "
    "of a {x} positive or negative?|Read this customer review of a {x} and label it as "
    "positive or negative.|Did the customer like the {x}? Answer positive or negative.",
    products="blender|pair of headphones|backpack|desk lamp|coffee maker|pair of running "
    "shoes|phone case|keyboard|vacuum cleaner|water bottle|rice cooker|office chair|suitcase|"
    "electric kettle",
    spans="last week|a month ago|two months ago|in the spring|for my birthday|during the "
    "holiday sale",
    pos_openings="I bought this {x} {w} and I am really happy with it.|The {x} arrived "
    "quickly and it was well packed.|I have used this {x} every day since I got it {w}.|Great "
    "value for the price.|Honestly the best {x} I have owned.|This is my second {x} from this "
    "brand.",
    pos_details="It works exactly as described.|The quality is better than I expected.|It still "
    "looks brand new.|Setup took two minutes.|My whole family loves it.|It is quiet, light and "
    "easy to clean.|Customer service answered my question within an hour.|It feels solid and "
    "well made.",
    pos_closings="I would buy it again.|Highly recommended!|Five stars from me.|No complaints "
    "at all.",
    neg_openings="I bought this {x} {w}, and honestly it was a waste of money.|The {x} stopped "
    "working after two weeks.|Very disappointed with this {x}.|I wanted to like this {x}, but "
    "it let me down.|The {x} arrived with a broken part.|I returned the {x} {w}.",
    neg_details="Customer support never replied to my emails.|It looks nothing like the photos "
    "and feels cheap.|It is loud, slow and hard to clean.|The replacement had the same "
    "problem.|The instructions were missing and the parts did not fit.|It broke the second time "
    "I used it.|It smells of plastic even after a week.",
    neg_closings="I would not recommend it.|Save your money.|I am returning it.|Two stars, and "
    "that is generous.",
    positive_labels="Positive|Positive.|The sentiment is positive.|The review is positive: the "
    "customer is happy with the {x}.",
    negative_labels="Negative|Negative.|The sentiment is negative.|The review is negative: the "
    "customer is unhappy with the {x}.",
    email_asks="Write a short email to {r} {purpose}.|Draft a polite email to {r} {purpose}.|"
    "Help me write a brief message to {r} {purpose}.|Can you write an email to {r} {purpose}?",
    recipients="my manager|a client|my landlord|my team|a professor|a new colleague|a "
    "recruiter|our neighbors",
    email_purposes=(
        (
            "asking to move our meeting to {day}",
            "Rescheduling our meeting",
            (
                "Would it be possible to move our meeting to {day}?",
                "Something came up on my side, "
                "and I want to give our discussion my full attention.",
                "Any time after {time} works well for me.",
            ),
        ),
        (
            "thanking them for their help last week",
            "Thank you",
            (
                "I just wanted to say thank you for your help last week.",
                "Your advice on the project saved me a lot of time.",
                "Please let me know if I can ever return the favor.",
            ),
        ),
        (
            "asking for an extension on the report",
            "Request for a short extension",
            (
                "I am writing to ask whether I could have a few more days to finish the report.",
                "I "
                "have collected most of the data, but I want to double-check the numbers before "
                "sending it.",
                "Would {day} be acceptable?",
            ),
        ),
        (
            "about a leaking kitchen tap",
            "Leaking kitchen tap",
            (
                "I wanted to let you know that the kitchen tap has started leaking.",
                "It drips constantly, even when it is fully closed.",
                "Could you arrange for someone to take a look this week?",
            ),
        ),
        (
            "following up after a job interview",
            "Thank you for the interview",
            (
                "Thank you for taking the time to speak with me on {day}.",
                "I enjoyed learning more about the team and the role.",
                "I am very interested in the position and look forward to hearing from you.",
            ),
        ),
        (
            "announcing that the office will be closed on {day}",
            "Office closed on {day}",
            (
                "Please note that the office will be closed on {day} for maintenance.",
                "If you need anything urgent, you can reach me by phone.",
                "Normal hours resume the following morning.",
            ),
        ),
        (
            "inviting them to a team lunch on {day}",
            "Team lunch on {day}",
            (
                "I would like to invite you to a team lunch on {day} at {time}.",
                "It is a good chance to catch up before the busy season starts.",
                "Please let me know by tomorrow if you can join.",
            ),
        ),
        (
            "asking about the status of an order",
            "Question about my order",
            (
                "I placed an order two weeks ago and have not received a shipping update yet.",
                "Could you let me know when I can expect it to arrive?",
                "Thank you in advance for your help.",
            ),
        ),
        (
            "introducing myself as the new project coordinator",
            "Hello from your new project coordinator",
            (
                "My name is {sender} and I have just joined as the new project coordinator.",
                "I will be your main contact for scheduling and updates from now on.",
                "I look forward to working with you.",
            ),
        ),
        (
            "requesting feedback on a draft proposal",
            "Feedback on the draft proposal",
            (
                "I have attached the first draft of the proposal.",
                "I would really appreciate your feedback, especially on the budget section.",
                "Could you send me your comments by {day}?",
            ),
        ),
    ),
    names="Alex|Maria|James|Priya|Daniel|Sofia|Michael|Hannah|David|Aisha|Thomas|Emma|Lucas|"
    "Grace|Omar|Chloe|Ryan|Nina|Samuel|Laura|Kevin|Rachel|Peter|Julia",
    senders="Alex|Maria|James|Priya|Daniel|Sofia|Michael|Hannah|David|Aisha|Thomas|Emma",
    greetings="Hi {name},|Dear {name},|Hello {name},",
    signoffs="Best regards,|Thanks,|Kind regards,|All the best,|Many thanks,",
    days="Monday|Tuesday|Wednesday|Thursday|Friday|next Monday|next Wednesday",
    times="10 a.m.|11:30 a.m.|noon|2 p.m.|3:30 p.m.|4 p.m.",
    email_extras="Keep it polite but brief.|Use a friendly tone.|Make it sound professional.|"
    "It should be no longer than a few sentences.|Sign it as {sender}.|My name is {sender}.",
    email_layout="Subject: {subject}\n\n{greeting}\n\n{body}\n\n{signoff}\n{sender}",
    story_asks="Write a short story about {theme}.|Tell me a short story about {theme}.|Write a "
    "very short bedtime story about {theme}.|Can you write a five-sentence story about {theme}?",
    story_characters=(
        ("a retired teacher named {name}", "f"),
        ("a shy boy called {name}", "m"),
        ("an old fisherman named {name}", "m"),
        ("a young baker named {name}", "f"),
        ("a curious girl called {name}", "f"),
        ("a tired night-shift nurse named {name}", "m"),
    ),
    names_female="Clara|Rosa|Mia|Elena|Ruth|Lily|Ada|Nora",
    names_male="Leo|Sam|Henry|Oscar|Felix|Arthur|Ben|Theo",
    pronouns=("she", "her", "he", "his"),
    story_objects="a lost umbrella|an old map|a stray cat|a letter with no name on it|a broken "
    "bicycle|a forgotten diary|a tiny wooden boat|a mysterious key|a box of old photographs|a "
    "shy puppy",
    story_places="the train station|the attic|the bakery on the corner|the village library|the "
    "park by the river|the school garden|the harbor|an empty classroom",
    story_theme="{object} found at {place}",
    story_cast="The main character should be {character}.",
    story_openings="One rainy morning|Late one evening|On the first day of spring|One quiet "
    "Sunday|Just before sunset|On a cold winter afternoon",
    story_first="{opening}, {character} found {object} at {place}.",
    story_wishes="{Pron} had always wanted a little adventure.|{Pron} had always kept to the "
    "same quiet routine.|{Pron} had always been too shy to talk to the neighbors.|{Pron} had "
    "always wondered what lay beyond the hills.|{Pron} had always loved a good mystery.",
    story_middles="At first, {pron} did not know what to do, so {pron} asked the neighbors for "
    "help.|Nobody on the street seemed to know where it had come from.|The next day, {pron} "
    "went back to {place} and waited.|{Pron} put up a small handwritten sign and hoped someone "
    "would answer.",
    story_twists="To {poss} surprise, the owner turned out to be an old friend from school.|By "
    "the end of the week, the whole street was talking about it.|A few days later, a little "
    "girl knocked on the door with a thank-you note.|Slowly, {name} realized that the small "
    "mystery had changed {poss} whole week.",
    story_endings="From that day on, {name} never walked past {place} without smiling.|It was "
    "the beginning of a friendship that would last for years.|Sometimes, {name} thought, the "
    "best adventures start with something small.|And every spring after that, {name} told the "
    "story to anyone who would listen.",
    refusals="As an AI language model, I cannot {v}.|As an AI language model, I cannot {v}. "
    "However, I can {o}.|I'm sorry, but I can't help with that.|I'm sorry, but as an AI "
    "developed to be helpful and harmless, I cannot {v}.|I apologize, but I am not able to "
    "{v}.|As an AI, I do not have personal opinions, so I cannot {v}.",
    refusal_verbs="provide personal opinions on this topic|help with that request|browse the "
    "internet or access real-time information|give advice on this matter|complete this task|"
    "share that kind of information",
    refusal_offers="suggest some general resources that might be useful|explain the general "
    "principles involved|help you think through the question yourself|point you to reliable "
    "sources of information",
    pii_kinds=("email", "phone", "ipv4", "credit_card"),
    pii_templates=(
        (
            "email",
            "You can reach me at {v} if you have questions.|Send the details to {v} and I "
            "will take a look.|My email is {v}, by the way.",
        ),
        (
            "phone",
            "Call me at {v} if anything is unclear.|My phone number is {v}.|You can text "
            "me at {v} after six.",
        ),
        (
            "ipv4",
            "The server is at {v}, so connect to it over SSH.|My router's address is {v}, "
            "in case that matters.|The logs show requests coming from {v}.",
        ),
        (
            "credit_card",
            "My card number is {v}, please keep it safe.|I paid with card {v} and "
            "the charge still shows as pending.|Here is my card: {v}, expiry 09/27.",
        ),
    ),
    mojibake_sentences="It’s worth the effort — really.|That’s the “secret”, if there is one.|"
    "Honestly, it’s easier than it sounds…|Café owners know this trick — and they’re right.",
)
