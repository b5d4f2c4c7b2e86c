"""The 18F handbook QA dev set, as written: per page, one question the page answers and one on the same topic that
no page answers. `python eval/18f-qa/pairs.py` writes dev.jsonl next to it (see README.md)."""

from __future__ import annotations

import json
from pathlib import Path

TL = "travel-and-leave/"
TP = "travel-and-leave/travel-and-leave-policies/"
GI = "general-information-and-resources/"
ER = GI + "employee-resources-policies/"
HS = "hiring-staying-or-changing-jobs/"

# (gold page, answerable question, reference answer, unanswerable question, terms that never co-occur in a page)
PAIRS: list[tuple[str, str, str, str, list[str]]] = [
    (
        TL + "voluntary-leave-transfer-program.md",
        "How negative does my leave balance need to look before I can ask for donated leave?",
        "24 hours",
        "How many donated leave hours can one coworker give me in a year?",
        ["donat", "per year", "maximum donation"],
    ),
    (
        TL + "paid-parental-leave.md",
        "How long is paid parental leave when we adopt a kid?",
        "12 weeks",
        "Can paid parental leave be split between two GSA parents working on the same team?",
        ["paid parental", "same team", "split"],
    ),
    (
        TL + "overtime.md",
        "Whats the salary cap above which I can't get overtime or comp time?",
        "$191,900",
        "What is the overtime pay multiplier for working on a federal holiday?",
        ["overtime", "multiplier", "holiday pay rate"],
    ),
    (
        TL + "fmla.md",
        "How long can I take unpaid FMLA to look after a sick veteran?",
        "26 weeks",
        "Can I take FMLA leave to look after a sick grandparent?",
        ["fmla", "grandparent"],
    ),
    (
        TP + "travel-guide-4-reimbursement.md",
        "After I submit a travel voucher, how long is the review?",
        "3-5 business days",
        "Can I get reimbursed for a travel voucher in cash instead of a bank deposit?",
        ["voucher", "in cash", "bank deposit"],
    ),
    (
        TP + "moving.md",
        "Up to how many days can I relocate without telling PeopleOps?",
        "120 days",
        "Does GSA pay relocation expenses when I move to another state on my own?",
        ["relocat", "moving expenses reimbursed"],
    ),
    (
        TP + "travel-guide-3-travel.md",
        "What share of the normal meal allowance do I get on the first and last day of a trip?",
        "75%",
        "What is the daily meal allowance when traveling to Tokyo?",
        ["tokyo"],
    ),
    (
        TP + "first-time-travel-get-in-concur.md",
        "How long should I expect my Concur account setup to take?",
        "10 business days",
        "Can I book personal vacation flights through Concur at the government rate?",
        ["concur", "personal vacation"],
    ),
    (
        TP + "travel-guide-2-book-travel.md",
        "If my flight leaves in less than 72 hours, who do I call to book?",
        "AdTrav",
        "Which airline seats are we allowed to upgrade to business class with our own miles?",
        ["business class", "own miles"],
    ),
    (
        TL + "advanced-sick-leave.md",
        "What's the most advanced sick leave I can request?",
        "240 hours",
        "Is advanced sick leave forgiven if I leave GSA before paying it back with a disability retirement?",
        ["advanced sick", "disability retirement"],
    ),
    (
        TL + "leave.md",
        "How much annual leave do I earn per pay period in my first 3 years?",
        "4 hours per pay period",
        "How many hours of bereavement leave do we get when a grandparent dies?",
        ["grandparent"],
    ),
    (
        GI + "business-and-ops-policies/top-secret.md",
        "About how long does a brand new Top Secret clearance take?",
        "6-8 months",
        "Who pays for the polygraph exam for a Top Secret clearance?",
        ["polygraph"],
    ),
    (
        GI + "washington-dc.md",
        "Roughly how much is a cab from DCA?",
        "~$20",
        "What is the guest wifi password at the DC office?",
        ["wifi password"],
    ),
    (
        GI + "chicago.md",
        "How much is the deposit on a Ventra card?",
        "$5 deposit",
        "Which floor is the Chicago office on?",
        ["chicago", "floor number"],
    ),
    (
        GI + "software.md",
        "What's the price limit for the simple software purchase process?",
        "$10,000",
        "How long does a software license renewal take to get approved?",
        ["license renewal", "to get approved"],
    ),
    (
        GI + "purchase-requests.md",
        "After ordering, how long until my business cards show up?",
        "7-10 business days",
        "How many business cards can I order at once?",
        ["business cards", "at once"],
    ),
    (
        GI + "san-francisco.md",
        "How much is a one-way SFMTA fare?",
        "$2",
        "Does the San Francisco office have a lactation room?",
        ["san francisco", "lactation"],
    ),
    (
        GI + "tech-policies/gsa-pages.md",
        "How long does a site manager get to hand a CAP to the system owner?",
        "30 days",
        "What is the storage quota for a site on GSA Pages?",
        ["storage quota"],
    ),
    (
        ER + "deaf-hoh.md",
        "How far ahead must I cancel an interpreter to avoid GSA being billed?",
        "48 hours",
        "Which vendor provides the sign language interpreters under the GSA contract?",
        ["interpreter", "vendor name", "contract number"],
    ),
    (
        ER + "work-schedules.md",
        "How many hours is a full-time pay period?",
        "80 hours",
        "Can a part-time employee switch to a compressed schedule in their first month?",
        ["part-time", "compressed", "first month"],
    ),
    (
        ER + "veterans-service-members.md",
        "How long can the DETO approval take?",
        "6 months to a year",
        "Does GSA make up the pay difference for reservists deployed for a long time?",
        ["reservist", "pay difference"],
    ),
    (
        ER + "employment-verification.md",
        "Who runs The Work Number?",
        "Equifax",
        "How much does The Work Number charge a landlord per verification?",
        ["work number", "landlord"],
    ),
    (
        ER + "supporting-deaf-hoh-colleagues.md",
        "How early should I join the Zoom room when there's a captioner?",
        "10 to 15 minutes",
        "Which browser does the captioning service support best?",
        ["caption", "browser support"],
    ),
    (
        "training-and-development/details-professional-development.md",
        "How long do professional development details usually run?",
        "30 - 120 days",
        "Does a professional development detail count toward time-in-grade for promotion?",
        ["time-in-grade", "professional development detail"],
    ),
    (
        "training-and-development/external-speaking-request-playbook.md",
        "Typically how long do speaking approvals take?",
        "2–3 weeks",
        "Are we allowed to accept a speaker fee for talking at a conference?",
        ["speaker fee"],
    ),
    (
        "training-and-development/conferences-events-training.md",
        "Under what cost does a training not at a conference get the lighter approval?",
        "$2,500",
        "How many conferences per year is each employee allowed to attend?",
        ["conferences per year"],
    ),
    (
        "training-and-development/pra-for-user-research.md",
        "How many participants max can I do research with over 12 months without PRA clearance?",
        "9 or fewer",
        "How much can we pay research participants as an incentive gift card?",
        ["gift card", "participant", "incentive amount"],
    ),
    (
        "office-of-solutions/history.md",
        "How many orders did the Pueblo operation fill over 45 years?",
        "76 million",
        "Who was the first director of TTS Solutions?",
        ["first director"],
    ),
    (
        "office-of-acquisition/management-reviews-of-procurement-actions.md",
        "How many business days before the review must documents go to reviewers?",
        "5 business days",
        "Who chairs the review board for procurements above $1 million?",
        ["chairs", "$1 million"],
    ),
    (
        HS + "hiring-authorities.md",
        "What's the max term for an IT Specialist hired on a term appointment?",
        "8 years",
        "How much is the recruitment bonus for hard-to-fill IT roles?",
        ["recruitment bonus", "hard-to-fill"],
    ),
    (
        HS + "assignee-detail.md",
        "What is the total cap on a detail including its extension?",
        "240 days",
        "Can a detail be done from outside the United States?",
        ["detail", "outside the united states"],
    ),
    (
        HS + "term-extensions.md",
        "How long before my term ends does PeopleOps get in touch?",
        "6-7 months",
        "Can a term employee be converted to a permanent position without competition?",
        ["term", "without competition", "converted to permanent"],
    ),
    (
        HS + "resume.md",
        "How many years of job history should a federal resume cover at minimum?",
        "7 years",
        "What font size does HR require on federal resumes?",
        ["font size"],
    ),
    (
        HS + "gsa-details.md",
        "How long can processing a detail take when an IAA is needed?",
        "4-6 weeks",
        "Does my locality pay change during a detail in another city?",
        ["locality pay", "detail", "another city"],
    ),
    (
        "about-us/tts-consulting/operations/welcome.md",
        "What's the weekly hours ceiling unless I get permission?",
        "40 hours a week",
        "Is there a stipend for setting up a home office?",
        ["home office stipend"],
    ),
    (
        "getting-started/how-to-log-in.md",
        "How often do we have to change our password?",
        "every 90 days",
        "What is the minimum length of a GSA network password?",
        ["minimum length", "characters long", "password"],
    ),
    (
        "getting-started/classes/benefits.md",
        "What discount do cell carriers give federal employees?",
        "15% discount",
        "How much does GSA contribute to dental insurance premiums?",
        ["dental", "gsa contributes"],
    ),
    (
        "getting-started/classes/writing-lab.md",
        "How fast does the writing lab normally turn around a short email edit?",
        "under 24 hours",
        "Does the writing lab translate documents into Spanish?",
        ["writing lab", "spanish"],
    ),
    (
        "tools/google-calendar.md",
        "What's the default length of a new Google Calendar event?",
        "30 minutes",
        "How do I share my calendar with someone outside of government?",
        ["outside of government", "share your calendar"],
    ),
    (
        "tools/mural.md",
        "Unused Mural members are converted to guests after how many days?",
        "90 days",
        "How many Mural member licenses does TTS have in total?",
        ["mural", "licenses in total"],
    ),
    (
        "tools/qualtrics.md",
        "How often must I log into Qualtrics to keep my account?",
        "every 9 weeks",
        "What is the maximum number of responses a Qualtrics survey can collect?",
        ["qualtrics", "maximum number of responses"],
    ),
    (
        "tools/slack/notifications-general-communication.md",
        "For how long after posting can I edit a Slack message?",
        "5 minutes",
        "How long are Slack messages kept before they are deleted?",
        ["retention period"],
    ),
    (
        "tools/zoom.md",
        "What domain do I type when signing into Zoom with SSO?",
        "gsa.zoomgov.com",
        "What is the maximum number of participants in a Zoom webinar?",
        ["webinar", "maximum number of participants"],
    ),
    (
        "tools/github.md",
        "Should I sign up for GitHub with my work or personal email?",
        "work email",
        "How many private repositories can a TTS GitHub team create?",
        ["private repositories", "how many"],
    ),
    (
        "launching-software/infrastructure.md",
        "How much can a sandbox user spend per month?",
        "$500",
        "What is the uptime guarantee of cloud.gov in its SLA?",
        ["uptime guarantee"],
    ),
    (
        "launching-software/security.md",
        "How long is set aside for greybox testing?",
        "2 weeks",
        "How much does an external penetration test vendor cost per system?",
        ["penetration test vendor", "per system"],
    ),
    (
        "launching-software/lifecycle.md",
        "How long are LATO Low system ATOs valid?",
        "3 years",
        "Who signs the ATO for systems hosted on AWS GovCloud?",
        ["govcloud", "signs the ato"],
    ),
    (
        "tools/eventbrite.md",
        "How many business days ahead must accommodation requests be emailed for an event?",
        "3 business days",
        "What is the Eventbrite fee per ticket for paid government events?",
        ["eventbrite", "fee per ticket"],
    ),
    (
        "getting-started/classes/travel-101.md",
        "Within how many business days after a trip do I file the voucher?",
        "5 business days",
        "Is there a travel allowance for bringing a spouse along on a work trip?",
        ["spouse", "work trip"],
    ),
    (
        ER + "daily-checkin.md",
        "What's the reporting target for the daily check-in tool?",
        "100% reporting",
        "What happens if I forget the daily check-in three times in a month?",
        ["check-in", "three times in a month"],
    ),
    (
        GI + "reasonable-accommodations.md",
        "For needs shorter than how long can I skip the full accommodation process?",
        "6 months",
        "What is the budget for reasonable accommodation equipment per employee?",
        ["accommodation", "budget per employee"],
    ),
    (
        TP + "travel-guide-faq.md",
        "How long before departure is contract airfare ticketed?",
        "72 hours",
        "Can I earn frequent flyer miles on a government contract fare and keep them?",
        ["frequent flyer", "keep them"],
    ),
    (
        "about-us/tts-consulting/operations/supervisor-responsibilities.md",
        "From what detail length does a supervisor need to update the performance plan?",
        "120 days or more",
        "What is the maximum span of control for a supervisor?",
        ["span of control"],
    ),
    (
        GI + "how-we-collaborate.md",
        "How long should the team spend on a disagreement meeting to decide together?",
        "60 minutes",
        "Which voting app do we use to break ties in team decisions?",
        ["voting app"],
    ),
    (
        "training-and-development/working-groups-and-guilds-101.md",
        "Which days of a new member's time does the onboarding group try to improve?",
        "first 7, 30 and 90 days",
        "How much budget does each guild get per fiscal year?",
        ["guild", "budget per fiscal year"],
    ),
    (
        "tools/hrlinks.md",
        "If I take 6 hours sick in an 8 hour day, what do I change regular time to?",
        "2 hours",
        "What is the HR Links password reset phone number?",
        ["hr links", "password reset phone"],
    ),
    (
        "getting-started/classes/accessibility.md",
        "What share of accessibility issues do the three main tips avoid?",
        "90%",
        "Which screen reader license does GSA buy for designers?",
        ["screen reader license"],
    ),
    (
        "about-us/tts-consulting/about/planning.md",
        "When after a project starts is the first partner satisfaction survey sent?",
        "90 days",
        "What was the partner satisfaction score in FY21?",
        ["fy21", "satisfaction score"],
    ),
    (
        "general-information-and-resources/distributed.md",
        "How long does the trail walk over lunch last?",
        "40 minutes",
        "Does TTS reimburse coworking space memberships for remote staff?",
        ["coworking", "reimburse"],
    ),
    (
        "office-of-acquisition/index.md",
        "What's the micro-purchase threshold?",
        "$10,000",
        "Who is the head of contracting activity for TTS?",
        ["head of contracting activity"],
    ),
]


def main() -> None:
    lines = []
    for i, (gold, question, answer, unanswerable, absent) in enumerate(PAIRS):
        split = "tune" if i % 2 == 0 else "report"
        lines.append(
            {"question": question, "answerable": True, "gold": [gold], "answer": answer, "split": split}
        )
        lines.append(
            {
                "question": unanswerable,
                "answerable": False,
                "gold": [],
                "topic": gold,
                "absent": absent,
                "split": split,
            }
        )
    out = Path(__file__).resolve().parent / "dev.jsonl"
    out.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} questions to {out}")


if __name__ == "__main__":
    main()
