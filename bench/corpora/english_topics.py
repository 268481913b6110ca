"""English topic banks for the synthetic corpora. Hand-written for this project; nothing here
is copied from any corpus."""

from __future__ import annotations

from bench.corpora.banks import make_topic

ENGLISH_TOPICS = (
    make_topic(
        "cooking",
        label="home cooking",
        practitioners="experienced cooks",
        subjects="banana bread|vegetable stir-fry|homemade pizza dough|chicken noodle soup|"
        "a simple tomato sauce|sourdough bread|fluffy pancakes|roasted vegetables|a lentil curry|"
        "chocolate chip cookies|fried rice|a Greek salad|grilled salmon|mushroom risotto|"
        "apple pie|beef stew|guacamole|scrambled eggs|vegetable lasagna|garlic butter shrimp",
        asks="How do I make {subject} at home?|"
        "What is the easiest way to cook {subject} {context}?|Give me a simple recipe for "
        "{subject}.|Why does my {subject} never turn out the way I want?|How can I make "
        "{subject} a little healthier?|What should I serve with {subject}?|"
        "Can you explain how to prepare {subject} without special equipment?",
        contexts="on a busy weeknight|for a family of four|for a dinner party|when I only have "
        "thirty minutes|on a tight budget|for meal prep on Sunday|in a small apartment kitchen|"
        "for a picnic|as a beginner cook|with ingredients from a regular supermarket",
        actions="preheat the oven before you start mixing anything|measure the flour with a "
        "kitchen scale instead of cups|let the dough rest for at least thirty minutes|season the "
        "dish a little at a time and taste as you go|cut the vegetables into pieces of the same "
        "size|heat the pan properly before adding the oil|use ripe ingredients for a deeper "
        "flavor|keep the heat at a gentle simmer|read the whole recipe once before you begin|"
        "prepare all the ingredients before turning on the stove|add a splash of lemon juice at "
        "the end|let the meat rest for a few minutes before slicing it|toast the spices briefly "
        "to wake up their aroma|save a cup of pasta water for the sauce|store the leftovers in an "
        "airtight container",
        benefits="a more even texture|a richer flavor|a crisp golden crust|less time spent "
        "cleaning up|more consistent results|a dish that tastes good the next day too|a lighter "
        "and fluffier result|better control over the seasoning",
        mistakes="overcrowding the pan|opening the oven door too often|adding all the salt at "
        "the very beginning|using cold butter when the recipe asks for soft butter|skipping the "
        "resting time|cooking everything on the highest heat|guessing the measurements for baking",
        tools="a cast iron skillet|a digital kitchen scale|a sharp chef's knife|an instant-read "
        "thermometer|a heavy-bottomed pot|a silicone spatula|a sheet pan|a good cutting board",
        facts="Baking is closer to chemistry than everyday cooking, so small changes in the "
        "amounts matter.|Salt does more than make food salty; it also brings out sweetness and "
        "balances bitterness.|Most home ovens run a little hotter or cooler than the dial "
        "suggests.|Resting dough gives the gluten time to relax, which makes it easier to shape.|"
        "Fresh herbs are best added near the end, while dried herbs need time to release their "
        "flavor.|A squeeze of lemon can brighten a dish that tastes flat.|Browning food in a hot "
        "pan creates many of the flavors we think of as savory.|Overripe bananas are perfect for "
        "baking because they are sweeter and softer.",
    ),
    make_topic(
        "programming",
        label="software development",
        practitioners="experienced developers",
        subjects="recursion|unit testing|Git branching|list comprehensions in Python|asynchronous "
        "programming|SQL joins|regular expressions|object-oriented design|REST APIs|hash tables|"
        "code reviews|Docker containers|dependency management|error handling|binary search|"
        "database indexes|type hints in Python|memory leaks|continuous integration|big O notation",
        asks="Explain {subject} {audience}.|What are the main benefits of {subject}?|When should "
        "I use {subject} in a real project?|How do I get better at {subject}?|What is a good way "
        "to learn {subject} {context}?|Can you give me a practical introduction to {subject}?|"
        "What problems does {subject} solve?",
        contexts="in my spare time|while working full time|in a small team|before a job "
        "interview|for a side project|in a legacy codebase|on a tight deadline|as a self-taught "
        "developer",
        actions="write a small test before changing the code|read the error message carefully "
        "from top to bottom|break the problem into smaller functions|use meaningful variable "
        "names|commit your work in small, focused steps|reproduce the bug before you try to fix "
        "it|check the official documentation first|profile the code before optimizing anything|"
        "keep functions short and focused on one task|add logging around the part that fails|"
        "pair with a colleague on the tricky parts|review your own diff before asking others to "
        "review it|pin the versions of your dependencies|write down the expected output before "
        "running the code",
        benefits="code that is easier to maintain|fewer bugs in production|faster feedback while "
        "you work|a clearer picture of what the program does|more confidence when you refactor|"
        "shorter code reviews|a smoother start for new teammates",
        mistakes="optimizing code before measuring it|copying code from the internet without "
        "understanding it|ignoring compiler warnings|writing one giant function that does "
        "everything|catching every exception and silently moving on|skipping tests because the "
        "change looks small|pushing directly to the main branch",
        tools="a debugger|a linter|a version control system|a good code editor|an automated test "
        "suite|a profiler|a continuous integration service|a code formatter",
        facts="Most bugs are found faster by reading the code slowly than by guessing.|A test "
        "that fails for the right reason is worth more than ten tests that always pass.|Readable "
        "code is usually easier to speed up later than clever code.|Version control lets you "
        "experiment freely because you can always go back.|Naming things well is one of the "
        "hardest and most valuable skills in programming.|Small pull requests get reviewed "
        "faster and contain fewer mistakes.|Many performance problems come from doing the same "
        "work more than once.|Documentation is most useful when it explains why the code exists, "
        "not only what it does.",
    ),
    make_topic(
        "history",
        label="history",
        practitioners="historians",
        subjects="the fall of the Roman Empire|the Industrial Revolution|the Silk Road|the French "
        "Revolution|the Renaissance|the printing press|the Cold War|ancient Egypt|the Ming "
        "dynasty|the age of exploration|the invention of writing|the American civil rights "
        "movement|the Meiji Restoration|the Black Death|the Byzantine Empire|the first Olympic "
        "Games|the spread of the railway|the Hanseatic League",
        asks="Summarize the main causes of {subject}.|Why is {subject} considered a turning point "
        "in history?|What was daily life like during {subject}?|How did {subject} change the way "
        "people lived?|What are the most common myths about {subject}?|Describe the long-term "
        "effects of {subject}.|How do historians study {subject} today?|What should I read about "
        "{subject} {context}?",
        contexts="for a school presentation|for a history podcast|before a museum visit|for an "
        "essay I am writing|for a trivia night|before I travel to the region",
        actions="compare several sources before drawing a conclusion|look at the economic "
        "pressures of the period|read letters and diaries written by ordinary people|place the "
        "events on a simple timeline|ask who wrote each source and why|consider how geography "
        "shaped the events|pay attention to what the sources leave out|connect the events to "
        "what happened in neighboring regions|separate long-term causes from immediate triggers|"
        "check when each account was written",
        benefits="a clearer picture of the period|a more balanced understanding of the events|a "
        "better sense of cause and effect|an essay that is harder to argue against|a deeper "
        "appreciation of the people involved",
        mistakes="judging past events only by modern standards|relying on a single source|"
        "treating legends as established facts|assuming that change happened overnight|ignoring "
        "the lives of ordinary people|mixing up correlation and cause",
        tools="a detailed timeline|a good historical atlas|a collection of primary sources|a "
        "well-reviewed general history|a museum archive|an online library catalogue",
        facts="Historians rarely agree on a single cause for any major event.|Many changes that "
        "look sudden in textbooks took several generations to unfold.|Trade routes spread ideas, "
        "religions and diseases as well as goods.|Primary sources tell us what people believed at "
        "the time, even when they were wrong.|The history of ordinary people is often "
        "reconstructed from tax records and court documents.|New archaeological finds regularly "
        "change the story we thought we knew.|Maps from a period reveal how people saw the world, "
        "not just where things were.",
    ),
    make_topic(
        "science",
        label="science",
        practitioners="scientists",
        subjects="photosynthesis|black holes|the water cycle|plate tectonics|vaccines|climate "
        "change|DNA replication|the theory of evolution|quantum entanglement|the greenhouse "
        "effect|antibiotic resistance|the periodic table|ocean currents|solar eclipses|the human "
        "immune system|renewable energy|gravity|the speed of light|volcanoes|the nitrogen cycle",
        asks="Explain {subject} {audience}.|What is {subject} and why does it matter?|How does "
        "{subject} actually work?|Give me a simple experiment that demonstrates {subject}.|What do "
        "scientists still not understand about {subject}?|Why is {subject} important for everyday "
        "life?|What is a common misconception about {subject}?|How would you teach {subject} "
        "{context}?",
        contexts="for a science fair project|for a middle school class|to a curious child|for a "
        "university exam|for a popular science blog",
        actions="start with a simple model before adding details|draw a diagram of each step|"
        "test one variable at a time|write down your prediction before the experiment|repeat the "
        "measurement several times|compare your results with a reliable source|ask what evidence "
        "would change your mind|use everyday examples to explain abstract ideas",
        benefits="a clearer mental model|results that you can trust|an explanation that sticks|a "
        "better feel for the numbers involved|more interesting questions to explore next",
        mistakes="confusing a theory with a guess|changing several variables at once|trusting a "
        "single surprising result|memorizing terms without understanding them|ignoring the units "
        "in a calculation",
        tools="a simple notebook for observations|a reliable textbook|an online simulation|a "
        "basic microscope|a spreadsheet for your measurements|a small telescope",
        facts="In science, a theory is a well-tested explanation, not a wild guess.|Good "
        "experiments change only one thing at a time.|Plants turn light, water and carbon dioxide "
        "into sugar and oxygen.|The same physical laws apply on Earth and in distant galaxies.|"
        "Most scientific progress comes from many small steps rather than sudden breakthroughs.|"
        "Measurements always come with some uncertainty, and good scientists report it.|Models "
        "are simplifications, and each one is useful for some questions and not others.",
    ),
    make_topic(
        "travel",
        label="travel planning",
        practitioners="experienced travelers",
        subjects="a weekend in Lisbon|backpacking through Southeast Asia|a road trip along the "
        "coast|a first trip to Japan|traveling with young children|a budget trip to Iceland|a "
        "train journey across Europe|a hiking holiday in the Alps|visiting national parks|a city "
        "break in Rome|solo travel|a week in Mexico City|a beach holiday in Greece|traveling with "
        "a pet|a ski trip|a long-haul flight",
        asks="Help me plan {subject}.|What should I pack for {subject}?|How much should I budget "
        "for {subject}?|What are the best tips for {subject}?|What mistakes should I avoid on "
        "{subject}?|Is {subject} a good idea {context}?|Create a simple three-day itinerary for "
        "{subject}.",
        contexts="in the off season|with a limited budget|in the middle of summer|with elderly "
        "parents|for the first time|during a public holiday|on short notice",
        actions="book the first and last night of accommodation in advance|pack one outfit fewer "
        "than you think you need|download offline maps before you leave|keep digital copies of "
        "your documents|travel outside peak season when you can|learn a few polite phrases in the "
        "local language|leave some free time in the schedule|check the entry requirements a few "
        "weeks ahead|buy travel insurance as soon as you book|carry a small amount of local cash|"
        "use public transport instead of taxis when possible",
        benefits="a more relaxed trip|lower costs overall|fewer unpleasant surprises|more time to "
        "enjoy the places you visit|better conversations with local people",
        mistakes="packing a different pair of shoes for every day|planning every hour of the "
        "trip|exchanging money at the airport|forgetting to check the passport expiry date|"
        "booking the cheapest flight without looking at the arrival time|trying to see five "
        "cities in one week",
        tools="a lightweight backpack|a rail pass|a packing list app|a reusable water bottle|a "
        "universal power adapter|a good guidebook",
        facts="Flights in the middle of the week are often cheaper than weekend flights.|Many "
        "museums offer free entry on certain days of the month.|Walking tours are one of the "
        "easiest ways to get to know a new city.|Jet lag is usually easier to handle when you "
        "travel west than east.|Local markets are a great place to try regional food at a fair "
        "price.|Booking directly with a small hotel sometimes gets you a better rate.",
    ),
    make_topic(
        "finance",
        label="personal finance",
        practitioners="financial planners",
        subjects="building an emergency fund|paying off credit card debt|saving for retirement|"
        "index funds|creating a monthly budget|buying a first home|compound interest|student "
        "loans|investing in bonds|improving a credit score|saving for a child's education|cutting "
        "monthly expenses|a high-yield savings account|diversification|inflation|negotiating a "
        "salary",
        asks="Explain {subject} {audience}.|What should I know about {subject}?|How does "
        "{subject} work in practice?|What are the pros and cons of {subject}?|Give me a simple "
        "plan for {subject}.|What is a realistic first step toward {subject}?|How should I think "
        "about {subject} {context}?",
        contexts="on a modest income|in my twenties|as a freelancer|with a growing family|after "
        "losing my job|close to retirement|while renting in an expensive city",
        actions="track every expense for one month|set up an automatic transfer on payday|pay "
        "off the debt with the highest interest first|keep three to six months of expenses in "
        "savings|review your subscriptions once a year|compare fees before choosing a fund|avoid "
        "checking your investments every day|write down a clear goal with a deadline|increase "
        "your savings rate whenever you get a raise|read the fine print before signing anything",
        benefits="less stress about money|more flexibility when something unexpected happens|"
        "steady progress toward your goals|lower fees over the long run|a clearer picture of "
        "where your money goes",
        mistakes="trying to time the market|carrying a balance on a high-interest card|buying "
        "things to keep up with friends|putting all your savings into a single stock|ignoring "
        "small recurring charges|borrowing money for short-term wants",
        tools="a simple spreadsheet|a budgeting app|a low-cost index fund|an automatic savings "
        "plan|a retirement calculator|a separate savings account",
        facts="Small amounts saved regularly can grow significantly thanks to compound interest.|"
        "High fees quietly eat into long-term returns.|An emergency fund keeps a surprise bill "
        "from turning into debt.|Most people underestimate how much they spend on small daily "
        "purchases.|Diversification reduces risk because different investments rarely fall at "
        "the same time.|Inflation means that money kept in cash slowly loses purchasing power.",
    ),
    make_topic(
        "health",
        label="health and fitness",
        practitioners="doctors",
        subjects="getting better sleep|starting a running routine|eating more vegetables|"
        "managing stress|strength training at home|drinking enough water|reducing screen time|"
        "improving posture|a balanced breakfast|stretching after exercise|healthy snacks|walking "
        "every day|mindful breathing|recovering after a workout|cutting back on sugar|staying "
        "active while working from home",
        asks="Give me some practical tips for {subject}.|How can I get started with {subject} "
        "{context}?|What are the benefits of {subject}?|Create a simple weekly plan for "
        "{subject}.|What is the most common mistake people make with {subject}?|How long does it "
        "take to see results from {subject}?|Why is {subject} so hard to stick with?",
        contexts="with a busy schedule|as a beginner|after a long break|without a gym "
        "membership|as someone over fifty|with two small children at home|while working night "
        "shifts",
        actions="go to bed at roughly the same time every night|start with ten minutes a day and "
        "build up slowly|keep a bottle of water on your desk|plan your meals for the week on "
        "Sunday|take a short walk after lunch|warm up for a few minutes before exercising|write "
        "down how you feel each day|put your phone in another room at night|add one extra "
        "portion of vegetables to dinner|rest at least one day a week",
        benefits="more energy during the day|better sleep|a calmer mood|steady progress without "
        "injuries|habits that last longer than a few weeks",
        mistakes="doing too much in the first week|skipping the warm-up|relying only on "
        "motivation|comparing your progress with other people|ignoring pain that keeps coming "
        "back|cutting out entire food groups overnight",
        tools="a simple habit tracker|a pair of comfortable running shoes|a reusable water "
        "bottle|a yoga mat|a basic set of resistance bands|a sleep diary",
        facts="Regular sleep and wake times are one of the most effective ways to sleep better.|"
        "Short, frequent activity is better than one long workout followed by a week on the "
        "couch.|Most adults benefit from at least a little strength training each week.|Thirst "
        "is not always a reliable sign of how much water you need.|Small changes that you can "
        "keep up beat dramatic changes that last a week.|If the symptoms do not go away, it is a "
        "good idea to talk to a doctor.",
    ),
    make_topic(
        "writing",
        label="writing",
        practitioners="editors",
        subjects="a cover letter|a short story|a persuasive essay|a product description|a "
        "personal blog post|a wedding speech|a thank-you note|a research abstract|a newsletter "
        "introduction|a book review|a social media post for a bakery|a professional profile|a "
        "conference talk proposal|a children's story about friendship",
        asks="Give me tips for writing {subject}.|How do I start {subject} when I have writer's "
        "block?|What makes {subject} memorable?|Help me outline {subject} {context}.|What are the "
        "most common problems in {subject}?|How long should {subject} be?",
        contexts="for a job application|for a school assignment|for my company blog|for a local "
        "newspaper|for a family event|for a writing competition",
        actions="write a messy first draft without stopping to edit|read your text out loud|cut "
        "every sentence that does not add something new|open with a concrete detail instead of "
        "a general statement|keep your reader in mind the whole time|use active verbs wherever "
        "you can|leave the draft alone for a day before revising|end with a clear call to "
        "action|replace vague words with specific ones|ask a friend to read it and tell you what "
        "they remember",
        benefits="a text that is easier to read|a stronger first impression|a clearer message|a "
        "voice that sounds like you|fewer rounds of revision",
        mistakes="trying to sound impressive instead of clear|editing every sentence while "
        "drafting|using three adjectives where one would do|burying the main point in the last "
        "paragraph|ignoring the length limit|repeating the same opening phrase",
        tools="a simple outline|a style guide|a thesaurus used with care|a timer for focused "
        "writing sessions|a notes app for collecting ideas",
        facts="Most good writing is rewriting.|Short sentences are easier to follow, but a mix of "
        "lengths keeps the rhythm interesting.|Readers remember stories and examples far better "
        "than abstract claims.|The first sentence has one job: to make the reader want to read "
        "the second.|Clear writing usually comes from clear thinking about what you want to say.",
    ),
    make_topic(
        "gardening",
        label="gardening",
        practitioners="gardeners",
        subjects="growing tomatoes|a small balcony garden|composting at home|caring for "
        "houseplants|growing herbs indoors|planting spring bulbs|keeping slugs away|raised garden "
        "beds|pruning fruit trees|starting seeds indoors|watering during a heatwave|growing "
        "strawberries in pots|attracting bees to the garden|a low-maintenance lawn",
        asks="How do I get started with {subject}?|What are the best tips for {subject} "
        "{context}?|What mistakes do beginners make with {subject}?|Give me a simple plan for "
        "{subject}.|Which tools do I need for {subject}?|Is {subject} worth the effort "
        "{context}?",
        contexts="in a shady yard|in a cold climate|on a small balcony|in heavy clay soil|with "
        "very little time|in a rented flat",
        actions="water deeply but less often|check the soil with your finger before watering|"
        "add a layer of mulch around the plants|choose varieties that suit your climate|rotate "
        "crops from year to year|remove dead leaves regularly|start small and expand next "
        "season|plant in the early morning or evening|feed the soil with compost|give seedlings "
        "plenty of light",
        benefits="stronger roots|healthier plants|a bigger harvest|less time spent weeding|a "
        "garden that looks good all year",
        mistakes="overwatering|planting too close together|using pots without drainage holes|"
        "buying plants that need more sun than you have|pruning at the wrong time of year",
        tools="a sturdy trowel|a watering can with a fine rose|a compost bin|a pair of sharp "
        "pruning shears|a soil thermometer|a few good pots",
        facts="Most houseplants die from too much water rather than too little.|Healthy soil is "
        "full of life, from earthworms to fungi.|Many herbs grow better when you harvest them "
        "often.|Plants grown in pots dry out faster than plants in the ground.|Native flowers "
        "tend to attract more pollinators than exotic ones.",
    ),
    make_topic(
        "career",
        label="careers and the workplace",
        practitioners="hiring managers",
        subjects="preparing for a job interview|asking for a raise|changing careers|working "
        "remotely|giving feedback to a colleague|running an effective meeting|managing a small "
        "team|networking at a conference|writing a strong resume|negotiating a job offer|dealing "
        "with burnout|learning a new skill at work|presenting to senior leaders|onboarding a new "
        "employee",
        asks="Give me advice on {subject}.|How should I approach {subject} {context}?|What are "
        "the most common mistakes in {subject}?|Create a short checklist for {subject}.|What do "
        "experts recommend for {subject}?|How can I feel more confident about {subject}?",
        contexts="after five years in the same role|at a small startup|in a large company|as a "
        "new manager|after a layoff|while working remotely|as an introvert",
        actions="prepare three concrete examples of your achievements|research the company "
        "before the conversation|write down your goals for the next year|ask for feedback "
        "regularly, not only at review time|keep a simple record of your wins|practice your "
        "answers out loud|follow up with a short thank-you message|set a clear agenda and share "
        "it in advance|block time in your calendar for focused work|ask open questions and "
        "listen to the answers",
        benefits="stronger relationships with your colleagues|a better negotiating position|less "
        "stress in the weeks before a review|meetings that end on time|a clearer path to your "
        "next role",
        mistakes="talking only about duties instead of results|accepting the first offer "
        "without discussion|waiting for your manager to notice your work|saying yes to every "
        "request|sending long emails when a short call would do|ignoring the signs of burnout",
        tools="a one-page resume|a simple project tracker|a shared meeting agenda|a professional "
        "profile online|a weekly planning routine",
        facts="Most hiring managers spend less than a minute on the first read of a resume.|"
        "Specific numbers make achievements far more convincing.|People remember how a meeting "
        "made them feel as much as what was decided.|Feedback is easier to hear when it is about "
        "behavior rather than personality.|Many good jobs are filled through personal "
        "recommendations.",
    ),
)
