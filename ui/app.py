"""The kappaml UI: ``streamlit run ui/app.py`` (started by ``make run``).

Settings come from the environment (see ``ui.settings.UISettings.from_env``). Every page reads
the project's topics through one cached background reader (``ui.live.reader``) and never waits
on Kafka itself.
"""

from __future__ import annotations

import streamlit as st

from ui import live

st.set_page_config(page_title="kappaml", page_icon=":material/insights:", layout="wide")

settings = live.settings()
pages = [
    st.Page("views/evaluation.py", title="Evaluation", icon=":material/monitoring:", default=True),
    st.Page("views/comparison.py", title="Champion vs challengers", icon=":material/compare_arrows:"),
    st.Page("views/predictions.py", title="Predictions", icon=":material/scatter_plot:"),
    st.Page("views/predict.py", title="Predict", icon=":material/calculate:"),
    st.Page("views/pipeline.py", title="Pipeline", icon=":material/lan:"),
]
page = st.navigation(pages)
live.sidebar(settings)
page.run()
