"""Word pools and templates of the generated ``synthetic-bios`` question answering set.

Every pool of entities (names, cities, jobs, employers, instruments, pet names, years) is split three ways, so
the people and facts of the val and test splits never occur in training. Every attribute has several sentence
templates and several paraphrased question templates; training uses the first ``TRAIN_TEMPLATES`` of each, val
and test the others, so a model must locate the answer, not match a phrasing it has seen.
"""

from __future__ import annotations

FIRST_NAMES = (
    "Ada", "Boris", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lars", "Maya",
    "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Stefan", "Tara", "Ulrich", "Vera", "Walter", "Xenia", "Yusuf", "Zoe",
    "Anton", "Bianca", "Carlos", "Dora", "Emil", "Fiona", "Gustav", "Hanna", "Ivan", "Julia", "Karl", "Lena",
    "Marco", "Nadia", "Oscar", "Petra", "Rafael", "Sofia", "Tomas", "Una", "Viktor", "Wanda", "Yara", "Zeno",
    "Alma", "Bruno", "Celia", "Diego", "Edith", "Felix", "Gloria", "Henrik", "Ida", "Jakob", "Klara", "Leon",
    "Mira", "Noah", "Odile", "Pablo", "Ruth", "Samuel", "Thea", "Uriel", "Vilma", "Wilhelm", "Yvonne", "Zara",
    "Arvid", "Beatrix", "Cyril", "Daria", "Erik", "Flora", "Gideon", "Helga", "Igor", "Jana",
)
SURNAMES = (
    "Abbott", "Brandt", "Castell", "Dorsey", "Eklund", "Falk", "Gruber", "Hollis", "Ivers", "Jansen", "Keller",
    "Lindqvist", "Moreau", "Novak", "Ortega", "Petrov", "Quist", "Rinaldi", "Sauer", "Thorne", "Ullmann", "Varga",
    "Weller", "Yates", "Zimmer", "Albrecht", "Bauer", "Conti", "Dekker", "Engel", "Fischer", "Gallo", "Hartmann",
    "Iqbal", "Jovanovic", "Kowalski", "Lorenz", "Marsh", "Nagel", "Olsen", "Pryce", "Romano", "Schultz", "Tanaka",
    "Urban", "Vogel", "Winter", "Young", "Zeller", "Arnold", "Becker", "Carver", "Duval", "Ellison", "Ferrer",
    "Garnier", "Haas", "Ingram", "Jensen", "Kraus", "Lambert", "Mendes", "Nolan", "Oakley", "Pascal", "Reyes",
    "Stone", "Tavares", "Unger", "Valdez", "Ward", "Xavier", "Yilmaz", "Zander", "Ashby", "Bishop", "Crane",
    "Dunn", "Eberly", "Frost", "Grant", "Hale", "Irwin", "Jarvis",
)
CITIES = (
    "Lisbon", "Porto", "Madrid", "Seville", "Valencia", "Lyon", "Marseille", "Bordeaux", "Nantes", "Geneva",
    "Zurich", "Basel", "Vienna", "Graz", "Salzburg", "Munich", "Hamburg", "Cologne", "Leipzig", "Dresden", "Prague",
    "Brno", "Krakow", "Gdansk", "Warsaw", "Budapest", "Zagreb", "Ljubljana", "Belgrade", "Sofia", "Bucharest",
    "Athens", "Thessaloniki", "Naples", "Turin", "Bologna", "Florence", "Genoa", "Milan", "Venice", "Oslo",
    "Bergen", "Stockholm", "Uppsala", "Helsinki", "Tallinn", "Riga", "Vilnius", "Copenhagen", "Aarhus", "Dublin",
    "Cork", "Glasgow", "Leeds", "Bristol", "Antwerp", "Ghent", "Rotterdam", "Utrecht", "Toronto", "Montreal",
    "Chicago", "Boston", "Denver", "Seattle", "Osaka", "Kyoto", "Melbourne", "Perth", "Santiago", "Lima", "Quito",
)
JOBS = (
    "carpenter", "dentist", "pharmacist", "architect", "baker", "librarian", "plumber", "surgeon", "journalist",
    "electrician", "veterinarian", "translator", "pilot", "chemist", "florist", "tailor", "geologist", "nurse",
    "accountant", "photographer", "firefighter", "optician", "locksmith", "economist", "butcher", "astronomer",
    "engineer", "lawyer", "gardener", "mechanic", "historian", "potter", "surveyor", "teacher", "jeweller",
    "physicist", "sculptor", "painter", "midwife", "cartographer", "brewer", "welder", "biologist", "actuary",
    "blacksmith", "barber", "chef", "detective",
)
EMPLOYER_PREFIXES = (
    "Norberg", "Alvarez", "Kestrel", "Halvorsen", "Brightwater", "Castellan", "Ironwood", "Meridian", "Silverline",
    "Oakridge", "Bluestone", "Redfern", "Windmere", "Ashgrove", "Coldbrook", "Fairhaven", "Goldcrest", "Highmoor",
    "Larkspur", "Millbrook", "Northgate", "Pinecrest", "Ravenhill", "Stormont", "Thornbury", "Westbrook", "Yellowfield",
    "Amberley", "Brookfield", "Crestview", "Dunmore", "Elmstead", "Foxley", "Greystone", "Hawthorne", "Kingsley",
)
EMPLOYER_KINDS = ("Logistics", "Foods", "Textiles", "Systems", "Pharma", "Shipping", "Motors", "Media", "Energy",
                  "Robotics", "Insurance", "Airlines")
INSTRUMENTS = (
    "piano", "violin", "cello", "flute", "clarinet", "oboe", "trumpet", "trombone", "tuba", "harp", "banjo",
    "mandolin", "ukulele", "accordion", "bagpipes", "saxophone", "drums", "guitar", "bassoon", "harmonica",
    "xylophone", "sitar", "lute", "organ", "viola", "marimba",
)
PETS = ("dog", "cat", "parrot", "rabbit", "horse", "tortoise", "hamster", "goat")
PET_NAMES = (
    "Biscuit", "Pepper", "Mango", "Juniper", "Pickles", "Waffles", "Clover", "Nutmeg", "Pumpkin", "Sprout",
    "Domino", "Marble", "Noodle", "Toffee", "Pebble", "Basil", "Cricket", "Fudge", "Ginger", "Hazel", "Jasper",
    "Kiwi", "Lulu", "Muffin", "Nacho", "Oreo", "Peanut", "Quincy", "Rusty", "Sunny", "Tango", "Umber", "Velvet",
    "Whiskers", "Ziggy", "Acorn", "Bramble", "Cocoa", "Dusty", "Echo", "Figaro", "Gizmo", "Honey", "Indigo",
)
YEARS = tuple(str(year) for year in range(1931, 2006))

#: attribute → the pool its answers come from
POOLS = {"city": CITIES, "year": YEARS, "job": JOBS, "employer": EMPLOYER_PREFIXES, "instrument": INSTRUMENTS,
         "pet_name": PET_NAMES}

#: attribute → sentence templates; ``{name}`` is the person, ``{value}`` the answer, ``{pet}`` the kind of pet,
#: ``{a}`` the article before a job ("a"/"an")
SENTENCES = {
    "city": ("{name} was born in {value}.", "{name} comes from {value}.", "Born in {value}, {name} never moved "
             "away.", "{value} is the birthplace of {name}.", "{name} is a native of {value}.",
             "The city where {name} was born is {value}."),
    "year": ("{name} was born in {value}.", "{name} was born in the year {value}.", "{value} is the year {name} "
             "was born.", "{name} came into the world in {value}.", "The birth year of {name} is {value}.",
             "{name}'s birth was recorded in {value}."),
    "job": ("{name} works as {a} {value}.", "{name} is {a} {value} by profession.", "By trade, {name} is {a} "
            "{value}.", "{name} earns a living as {a} {value}.", "{name} has spent many years working as {a} "
            "{value}.", "The profession of {name} is that of {a} {value}."),
    "employer": ("{name} works for {value}.", "{name} is employed by {value}.", "{value} employs {name}.",
                 "{name} has a job at {value}.", "{name} joined the staff of {value} some years ago.",
                 "The employer of {name} is {value}."),
    "instrument": ("{name} plays the {value}.", "In the evenings, {name} plays the {value}.", "{name} has played "
                   "the {value} since childhood.", "{name} practises the {value} every weekend.", "The instrument "
                   "{name} plays is the {value}.", "{name} is a keen amateur player of the {value}."),
    "pet_name": ("{name} has a {pet} named {value}.", "{name} owns a {pet} called {value}.", "{name}'s {pet} is "
                 "called {value}.", "{value} is the name of the {pet} that {name} keeps.", "{name} lives with a "
                 "{pet} by the name of {value}.", "The {pet} belonging to {name} answers to {value}."),
}

#: attribute → paraphrased questions about ``{name}``
QUESTIONS = {
    "city": ("Where was {name} born?", "Which city does {name} come from?", "What is {name}'s hometown?",
             "In which city was {name} born?", "Where does {name} originally come from?",
             "What city is {name} a native of?"),
    "year": ("In what year was {name} born?", "When was {name} born?", "What is {name}'s year of birth?",
             "In which year did {name} come into the world?", "What year was {name} born in?",
             "What is the birth year of {name}?"),
    "job": ("What does {name} do for a living?", "What is {name}'s job?", "What is the profession of {name}?",
            "What is {name}'s occupation?", "How does {name} earn a living?", "What kind of work does {name} do?"),
    "employer": ("Which company does {name} work for?", "Who employs {name}?", "Where does {name} work?",
                 "What is the name of {name}'s employer?", "At which firm is {name} employed?",
                 "For which organisation does {name} work?"),
    "instrument": ("What instrument does {name} play?", "Which musical instrument does {name} play?",
                   "{name} plays which instrument?", "What does {name} play?", "Which instrument is {name} able "
                   "to play?", "What is {name}'s instrument?"),
    "pet_name": ("What is the name of {name}'s {pet}?", "What is {name}'s {pet} called?", "What did {name} name "
                 "the {pet}?", "What name does {name}'s {pet} have?", "How is the {pet} of {name} called?",
                 "By what name is {name}'s {pet} known?"),
}

TRAIN_TEMPLATES = 3
"""Templates of each list used in training; val and test use the rest."""

FILLERS = (
    "The weather that year was unusually mild.", "Few people in the neighbourhood knew this.",
    "Local newspapers mentioned it only briefly.", "Friends describe the family as quiet and friendly.",
    "Nobody expected much attention to follow.", "Summers there are long and dry.",
)
"""Sentences that mention nobody: noise between the facts."""
