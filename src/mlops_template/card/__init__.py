"""The model card: what the model is, what it was trained on, how good it is and for whom, and
its limits, gathered from the files the stages wrote (:mod:`.facts`), rendered as Markdown
with Hugging Face front matter (:mod:`.render`) and compared with a base branch's card for
the pull-request report (:mod:`.diff`)."""
