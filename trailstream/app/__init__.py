"""The Streamlit app's own code: state, sidebar, widgets, forms, sign-in. The only package that imports streamlit."""
